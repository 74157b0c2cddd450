"""Benchmarks: run ``python -m benchmarks.handshake``; see ``benchmarks/README.md``."""
