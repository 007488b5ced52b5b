"""`from totalsegmentator.python_api import totalsegmentator`, served by livervessels."""
from livervessels.api import enhance_liver_vessels, totalsegmentator

__all__ = ["totalsegmentator", "enhance_liver_vessels"]
