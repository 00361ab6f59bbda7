"""Benchmarks that regenerate docs/BENCHMARKS.md: ``python -m benchmarks.report --run``."""
