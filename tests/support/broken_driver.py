"""A conformance driver that is wrong in one way: it wraps the real driver and changes what
goes through it. The runner must notice each fault and name the spec section it breaks.

Usage: ``python broken_driver.py MODE [ONCE]``. With a path ``ONCE``, the fault happens in
one process only: the first to find no file there creates it (the runner starts a driver
afresh after one that broke the interface). MODE is one of:

- ``corrupt-field``: one bit of the first HS1 the driver writes from injected random
  bytes is flipped (the interface checks' engines take the system's);
- ``accept-downgrade``: an HS2 refused as ``downgrade`` is reported accepted;
- ``wrong-code``: every ``decrypt_failed`` is reported as ``bad_signature``;
- ``one-wrong-code``: the first ``reflection`` is reported as ``decrypt_failed``, and
  nothing else is changed;
- ``skip-notice``: ``verify_notice`` answers ``unimplemented``;
- ``garbage``: the reply to the 200th request (past the interface checks) is not JSON;
- ``crash-export``: the process exits when asked to ``export``;
- ``stall-binding``: ``channel_binding`` requests are never answered;
- ``corrupt-seal``: the last bit of every sealed message is flipped;
- ``accept-all``: every error is reported as an empty result;
- ``mistyped-field``: every ``channel_binding`` in a result is a number;
- ``lax-requests``: a request the serving side refused (``request_receive``) is reported
  as served by the first handler;
- ``wrong-alert``: the ``alert`` operation says an engine sends nothing, and that an
  alert it read claimed ``expired``;
- ``chaos``: one reply in 60, chosen by a seeded generator, has one byte replaced by
  printable ASCII (often still JSON, with a wrong value).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any


def main() -> int:
    mode = sys.argv[1]
    if len(sys.argv) > 2:
        try:
            open(sys.argv[2], "x").close()
        except FileExistsError:
            mode = "honest"
    start = ([sys.executable, str(Path(__file__).with_name("cli.py")), "run"]
             if "AGENTAUTH_TEST_COMMAND_SERVER" in os.environ  # forked warm (support/cli.py)
             else [sys.executable, "-m", "agentauth"])
    real = subprocess.Popen([*start, "conformance", "driver"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert real.stdin is not None and real.stdout is not None
    out = sys.stdout.buffer
    count = 0
    corrupted = False
    injected: set[str] = set()  # the engines given random bytes
    rng = random.Random(7)
    for line in sys.stdin.buffer:
        count += 1
        try:
            request: Any = json.loads(line)
        except ValueError:
            request = None
        op = request.get("op") if isinstance(request, dict) else None
        if mode == "skip-notice" and op == "verify_notice":
            out.write(json.dumps({"id": request["id"], "unimplemented": "no"}).encode() + b"\n")
            out.flush()
            continue
        if mode == "crash-export" and op == "export":
            return 3
        real.stdin.write(line)
        real.stdin.flush()
        raw = real.stdout.readline()
        if mode == "stall-binding" and op == "channel_binding":
            continue
        if mode == "garbage" and count == 200:
            out.write(b"this is not a reply\n")
            out.flush()
            continue
        if mode == "chaos" and rng.randrange(60) == 0:
            at = rng.randrange(len(raw) - 1)
            out.write(raw[:at] + bytes([rng.randrange(32, 127)]) + raw[at + 1:])
            out.flush()
            continue
        reply = json.loads(raw)
        result, error = reply.get("result"), reply.get("error")
        if op == "handshake" and request.get("random") and result:
            injected.add(result["handle"])
        if (mode == "corrupt-field" and op == "start" and not corrupted
                and request["handle"] in injected):
            message = result["message"]
            result["message"] = f"{int(message[0], 16) ^ 1:x}" + message[1:]
            corrupted = True
        elif mode == "accept-downgrade" and error and error["code"] == "downgrade":
            reply = {"id": reply["id"], "result": {"reply": "00" * 100, "state": "done"}}
        elif mode == "corrupt-seal" and op == "seal" and result:
            message = result["message"]
            result["message"] = message[:-1] + f"{int(message[-1], 16) ^ 1:x}"
        elif mode == "accept-all" and error:
            reply = {"id": reply["id"], "result": {}}
        elif mode == "wrong-code" and error and error["code"] == "decrypt_failed":
            error["code"] = "bad_signature"
        elif mode == "one-wrong-code" and error and error["code"] == "reflection":
            error["code"] = "decrypt_failed"
            mode = "honest"
        elif (mode == "lax-requests" and op == "request_receive" and result
              and result.get("answer") == "refused"):
            reply["result"] = {"answer": "call", "id": result["id"], "route": 0}
        elif mode == "wrong-alert" and op == "alert" and result:
            reply["result"] = {"alert": None,
                               "claimed": None if result["claimed"] is None else "expired"}
        elif mode == "mistyped-field" and result and "channel_binding" in result:
            result["channel_binding"] = 42
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()
        if op == "shutdown":
            break
    real.stdin.close()
    real.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
