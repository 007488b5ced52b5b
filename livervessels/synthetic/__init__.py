"""Synthetic data for testing and benchmarking: phantoms whose anatomy and vessel trees are known.

`phantom` (first phantom family), `realistic` (realistic family), `network_mask` and `phantom_degrade`
(network-like masks), `metrics` (Dice, centerline Dice), `write_series` (DICOM image series).
Used by tests, benchmarks and scripts only; the application never imports it, and the wheel and the
MAP leave it out.
"""
