"""Audit logs (spec 15): a log file's contents, verified record by record.

The first byte says whether the expected head hash (the vectors') is given; the rest is
written to a temporary file that :func:`verify_audit_log` reads, as it reads a real log.
"""

from __future__ import annotations

import atexit
import os
import tempfile

from agentauth.keys.auditlog import verify_audit_log

from ._common import refused, run, vectors

LOGS = [v for v in vectors("keys") if v["kind"] == "audit_log"]
HEAD = next(v["head"] for v in LOGS if "head" in v)
_folder = tempfile.TemporaryDirectory(prefix="fuzz-audit-")
atexit.register(_folder.cleanup)
PATH = os.path.join(_folder.name, "audit.log")


def one(data: bytes) -> None:
    """Verify ``data[1:]`` as the contents of an audit log file."""
    if not data:
        return
    with open(PATH, "wb") as file:
        file.write(data[1:])
    refused(lambda: verify_audit_log(PATH, head=HEAD if data[0] & 1 else None))


def seeds() -> list[bytes]:
    """Every audit log vector, with and without the head."""
    return [bytes([flag]) + v["log"].encode("utf-8") for v in LOGS for flag in (0, 1)]


if __name__ == "__main__":
    run(one, seeds)
