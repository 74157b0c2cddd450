"""The public test vectors kept in ``tests/vectors`` (their sources, licenses and digests in
its README): loading them, one pytest param per Wycheproof case, and a missing file as a
failure that names the path, never a skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import pytest

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

ED25519_FILE = "wycheproof/ed25519_test.json"
X25519_FILE = "wycheproof/x25519_test.json"
CHACHA_FILE = "wycheproof/chacha20_poly1305_test.json"
NOISE_FILE = "noise/cacophony-25519-chachapoly-blake2b.json"
# wycheproof/xchacha20_poly1305_test.json: see test_xchacha_vectors.py (key files).
ALL_FILES = (ED25519_FILE, X25519_FILE, CHACHA_FILE, NOISE_FILE)

Case = dict[str, Any]
T = TypeVar("T")


def load(relative: str) -> dict[str, Any] | None:
    path = VECTORS / relative
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def missing_message(relative: str) -> str:
    return (f"test vector file {relative} not found under {VECTORS}: the public vectors "
            "are kept in tests/vectors (see its README)")


def need(case: T | None, relative: str) -> T:
    """The case itself; ``None`` stands for a missing file, which fails the test."""
    assert case is not None, missing_message(relative)
    return case


def wycheproof_params(relative: str, prefix: str) -> list[Any]:
    """One pytest param per Wycheproof case: ``(group, case)``; one failing param if absent."""
    data = load(relative)
    if data is None:
        return [pytest.param(None, None, id=f"{prefix}-file-missing")]
    return [
        pytest.param(group, case, id=f"{prefix}-tc{case['tcId']}-{'-'.join(case['flags'])}")
        for group in data["testGroups"]
        for case in group["tests"]
    ]


def all_flags(relative: str) -> set[str]:
    data = need(load(relative), relative)
    return {flag for g in data["testGroups"] for case in g["tests"] for flag in case["flags"]}


