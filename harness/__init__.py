"""Reproduction and benchmarking harness for visual anomaly detection around Reverse Distillation."""

__version__ = "0.1.0"
