"""Conformance: the vectors (``vectors``), the driver interface (``interface``, ``driver``)
and the runner that tests any implementation through it (``runner``; ``spec/conformance.md``)."""
