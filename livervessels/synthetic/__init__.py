"""Synthetic data for testing and benchmarking: phantoms whose anatomy and vessel trees are known.

Used by tests, benchmarks and scripts only; the application never imports it.
"""
