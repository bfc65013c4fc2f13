"""Benchmarks: medtune against TRL and plain transformers (``python -m benchmarks.run``)."""
