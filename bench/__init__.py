"""Benchmarks: each bench_*.py module has a main(argv) that prints a table and writes JSON."""
