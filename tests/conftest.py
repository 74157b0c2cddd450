"""Shared fixtures: every async test runs on both anyio backends."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run each ``@pytest.mark.anyio`` test once on asyncio and once on trio."""
    backend: str = request.param
    return backend


def pytest_sessionfinish() -> None:
    """Stop the command server of ``support/cli.py``, if a test started one."""
    cli = sys.modules.get("support.cli")
    if cli is not None:
        cli.stop()
