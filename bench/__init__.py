"""Benchmarks of linker (not installed with the package; run from a checkout)."""
