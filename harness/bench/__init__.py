"""Benchmarks (`python -m harness bench`): training and inference speed, data decoding, metric times,
and estimates of how long a sweep takes."""
