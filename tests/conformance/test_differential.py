"""The differential mode: two drivers given the same inputs, every difference reported."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentauth import wire
from agentauth.conformance.runner.inputs import KINDS, OPERATIONS, kind_of, make_input
from agentauth.conformance.runner.reencode import reencode
from agentauth.errors import DecodeError

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DRIVER = f"{sys.executable} -m agentauth conformance driver"
BROKEN = f"{sys.executable} {ROOT / 'tests' / 'support' / 'broken_driver.py'}"


def diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agentauth", "conformance", "diff", *args],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300,
                          check=False)


def test_a_driver_agrees_with_itself_on_every_input(tmp_path: Path) -> None:
    done = diff("--driver", DRIVER, "--driver", DRIVER, "--seed", "11", "--rounds", "24",
                "--json", str(tmp_path / "d.json"))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["seed"] == 11 and report["differences"] == []
    assert report["totals"] == {"same": 24 * len(OPERATIONS), "differ": 0, "unimplemented": 0}
    assert set(report["counts"]) == set(OPERATIONS)
    for kinds in report["counts"].values():
        assert set(kinds) == set(KINDS)
    assert "rerun with --seed 11" in done.stdout
    assert report["implementations"][0].startswith("agentauth")


def test_an_altered_driver_is_found_on_the_operation_it_changes(tmp_path: Path) -> None:
    """The altered copy answers bad_signature wherever the real one says decrypt_failed:
    the differences name the handshake and session operations, with both codes."""
    done = diff("--driver", DRIVER, "--driver", f"{BROKEN} wrong-code", "--seed", "4",
                "--rounds", "24", "--operation", "receive", "--operation", "open",
                "--operation", "frame_decode", "--json", str(tmp_path / "d.json"))
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr
    report = json.loads((tmp_path / "d.json").read_text())
    found = report["differences"]
    assert found and {d["operation"] for d in found} <= {"receive", "open"}
    for d in found:
        assert [a["value"] for a in d["answers"]] == ["decrypt_failed", "bad_signature"]
        assert d["input"] and d["round"] in range(24)
    assert report["counts"]["frame_decode"]["mutated"]["differ"] == 0
    assert any(line.startswith("DIFF receive / ") or line.startswith("DIFF open / ")
               for line in done.stdout.splitlines())


def test_usage_errors() -> None:
    assert diff("--driver", DRIVER).returncode == 2
    assert diff("--driver", DRIVER, "--driver", DRIVER, "--rounds", "-1").returncode == 2


def test_the_same_seed_gives_the_same_inputs() -> None:
    for operation in OPERATIONS:
        for index in range(40):
            one = make_input(operation, index, random.Random(f"5/{operation}/{index}"))
            two = make_input(operation, index, random.Random(f"5/{operation}/{index}"))
            assert one.steps == two.steps and one.what == two.what, (operation, index)
            if one.targets:  # (the interface's inputs are requests, no bytes to change)
                assert (one.what == "genuine") == (kind_of(index) == "valid")


def _decoded(data: bytes) -> object:
    try:
        return wire.decode_array(b"\x91" + data, 1 << 16, "value")
    except DecodeError as exc:
        return exc.code


@settings(max_examples=100, deadline=None, database=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1)
                    | st.text(max_size=40) | st.binary(max_size=40),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=10),
       st.integers(0, 2**32))
def test_a_reencoding_is_never_canonical(value: object, seed: int) -> None:
    """Each re-encoding is the same msgpack value written another way, or the value with a
    byte string read as a string or the reverse: never the canonical bytes, which the
    strict decoder must refuse as non_canonical (or, for a changed type, take or refuse as
    it would any other value)."""
    data = wire.encode_value(value)
    changed = reencode(data, random.Random(seed))
    if changed is None:
        assert value is None or type(value) in (bool, int)  # int: at its widest
        return
    out, what = changed
    assert out != data and what
    if not any(word in what for word in ("written as", "inside", "swapped")):
        assert _decoded(out) == "non_canonical"  # (a string-keyed map's order is the
        # caller's to check: the spec sorts its names)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"\x92\x01", b"\xd9\x05ab", b"\x81\x00"])
def test_bytes_that_are_not_msgpack_are_not_reencoded(data: bytes) -> None:
    assert reencode(data, random.Random(1)) is None
