"""Benchmark suite of skbutterfly against its peers (``python -m benchmarks.run``)."""
