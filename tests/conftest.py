"""Shared fixtures: a real Stratum server per database backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stratum_testing import BACKENDS, StratumServer, close_server, make_server  # noqa: E402


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """One server per backend for the whole session; tests use unique resource names."""
    srv = make_server(tmp_path_factory, request.param)
    srv.start()
    yield srv
    close_server(srv)


@pytest.fixture(params=BACKENDS)
def fresh_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A server of its own, for tests that restart or kill it."""
    srv = make_server(tmp_path_factory, request.param)
    srv.start()
    yield srv
    close_server(srv)
