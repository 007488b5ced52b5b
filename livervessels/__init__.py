"""Liver vessel analysis on CT: TotalSegmentator-compatible inference plus vessel enhancement and
portal/hepatic vein split. Research use only; not a medical device."""

__version__ = "0.1.0"
