"""Shared fixtures: a real Stratum server per database backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from stratum_testing import StratumServer, create_pg_database, drop_pg_database  # noqa: E402

BACKENDS = [b.strip() for b in os.environ.get("STRATUM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]


def make_server(tmp_path_factory: pytest.TempPathFactory, backend: str, extra_args: list[str] | None = None
                ) -> StratumServer:
    data_dir = tmp_path_factory.mktemp(f"stratum-{backend}")
    url = create_pg_database() if backend == "postgresql" else None
    return StratumServer(data_dir, url, extra_args, backend=backend)


def close_server(server: StratumServer) -> None:
    server.stop()
    if server.database_url:
        drop_pg_database(server.database_url)


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
