"""The conformance runner: ``agentauth conformance run --driver "COMMAND"``.

- :mod:`.suite`: the order of the checks, the command line, the exit status.
- :mod:`.check`: what a check is, the context it runs in, and how answers are judged.
- :mod:`.driver_process`: the driver under test as a child process (untrusted output).
- :mod:`.vector_replay`: every vector of ``spec/vectors/`` replayed through the driver.
- :mod:`.scenarios`: interface checks, and live handshakes with the runner as honest peer.
- :mod:`.conversation`: one handshake between the driver and the runner's own engine.
- :mod:`.attacks`: the runner as an active attacker in such a conversation.
- :mod:`.sessionless`: capability chains and envelopes made fresh for the driver.
- :mod:`.mutation`: random mutation rounds from a recorded seed.
- :mod:`.interop`: two drivers paired through the runner.
- :mod:`.differential`: two drivers given the same inputs (:mod:`.inputs`, written
  non-canonically by :mod:`.reencode`), every difference reported.
- :mod:`.report`: the outcomes, as a summary, JSON and JUnit XML.
"""

from .check import Check, Context, Fail
from .driver_process import DriverBroken, DriverProcess, Refused, Unimplemented
from .report import Outcome, Report, Status
from .suite import add_arguments, all_checks, main, run, run_checks, run_from_args

__all__ = [
    "Check",
    "Context",
    "DriverBroken",
    "DriverProcess",
    "Fail",
    "Outcome",
    "Refused",
    "Report",
    "Status",
    "Unimplemented",
    "add_arguments",
    "all_checks",
    "main",
    "run",
    "run_checks",
    "run_from_args",
]
