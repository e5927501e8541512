"""Start the ASGI app under uvicorn (httptools + uvloop when available)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from stratum.bootstrap import bootstrap, record_endpoint
from stratum.config import Settings
from stratum.server import cluster, listeners
from stratum.server.app_state import AppState
from stratum.server.asgi import StratumApp
from stratum.server.http_protocol import CoalescingHttpToolsProtocol
from stratum.store.db import Database


def prepare(settings: Settings) -> AppState:
    # A user error (a file where a directory should be, no permission): one line, not a traceback.
    for what, path in (("data directory", settings.data_dir), ("objects directory", settings.objects_dir),
                       ("directory of the AWS CLI files", settings.aws_config_dir)):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SystemExit(f"stratum: cannot use the {what} {path}: {exc.strerror}") from None
    # Migrate before building the providers: some start background work on their tables.
    db = Database(settings.db_url)
    try:
        cluster.lock_sqlite(db)
        db.migrate()
        cluster.check_master_key(db, settings)
    except cluster.ClusterConfigError as exc:
        db.dispose()
        raise SystemExit(f"stratum: {exc}") from None
    bootstrap(db, settings)
    record_endpoint(settings)
    return AppState(settings, db)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app's background services as soon as a shutdown signal comes."""

    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.state.shutting_down.set()
        super().handle_exit(sig, frame)


def http_config(app: StratumApp, host: str, port: int) -> uvicorn.Config:
    """uvicorn's settings for the API: no access log, no proxy headers, no Server header, the
    coalescing httptools protocol. Also sets the interpreter's switch interval (below)."""
    # A worker thread busy in Python (a large request being parsed) hands the GIL to the event
    # loop after at most this long, instead of the default 5 ms, each time the loop asks for it,
    # which it does several times per request (DescribePipeline p99 under an 8,000-tag flood:
    # 240-360 ms at 5 ms, 110-180 ms at 1 ms; bench/fairness.py).
    sys.setswitchinterval(0.001)
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on",
                          loop="auto", http=CoalescingHttpToolsProtocol, timeout_keep_alive=30, proxy_headers=False,
                          server_header=False)


def serve(settings: Settings, *, on_ready: str | Callable[[], str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Alembic announces every plugin it loads; the migrations it runs are what matters at start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # The default listener and every VPC endpoint listener are bound up front (all or none) and
    # served by one uvicorn server, so they share the app state, lifespan and signal handling.
    try:
        bound = listeners.bind_all(settings)
    except listeners.NetworkConfigError as exc:
        raise SystemExit(f"stratum: {exc}") from None
    routes = listeners.routes(bound)
    if settings.port == 0:  # the port the system chose: the profiles and the banner name the real one
        settings.port = int(bound[0][1].getsockname()[1])
    state = prepare(settings)
    app = StratumApp(state, routes.by_port, vpce_by_address=routes.by_address)
    server = _Server(http_config(app, settings.host, settings.port), state)
    if on_ready:
        print(on_ready() if callable(on_ready) else on_ready, flush=True)
    server.run(sockets=[sock for _, sock in bound])
