"""Compatibility package: scripts written for TotalSegmentator's Python API keep working
(`from totalsegmentator.python_api import totalsegmentator`). The implementation is livervessels."""
