"""Benchmarks (make bench): each `<name>_bench.py` module has `main(argv) -> int`."""
