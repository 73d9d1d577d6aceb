"""Benchmarks run by `make bench`: they print tables, never assert timings."""
