"""Conformance: the test vectors, this implementation's driver, and the runner that tests any
implementation through its driver (``spec/conformance.md``).

- :mod:`.vectors` makes the files of ``spec/vectors/`` from fixed keys, nonces and clocks.
- :mod:`.interface` is the driver interface's wire form, spoken by both ends.
- :mod:`.driver` is this implementation's driver: ``agentauth conformance driver``.
- :mod:`.runner` runs the suite against a driver: ``agentauth conformance run``. It replays
  the vectors, plays the driver's honest peer and an active attacker, mutates messages at
  random and pairs two drivers.

Imports run one way: ``runner`` uses ``vectors`` and ``interface``; ``driver`` uses
``interface``; ``vectors`` uses neither.
"""

__all__: list[str] = []
