"""Everything a running server holds: settings, database, caches and service providers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from stratum.config import Settings
from stratum.server.parsing_process import ParserProcess
from stratum.server.telemetry import RequestStats
from stratum.store.claims import Claims, Renewer
from stratum.store.db import Database

if TYPE_CHECKING:
    from stratum.auth.authenticator import Authenticator
    from stratum.auth.authorizer import Authorizer
    from stratum.hosting.service import HostingService
    from stratum.server.context import Provider


log = logging.getLogger("stratum.app")


class BackgroundService(Protocol):
    """Work a server does besides answering requests (the pipeline engine, sweeps...)."""

    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class AppState:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        from stratum.auth.authenticator import Authenticator
        from stratum.auth.authorizer import Authorizer
        from stratum.services.registry import build_providers

        self.settings = settings
        self.db = db or Database(settings.db_url)
        # This server's id and its claims on executions and jobs (several servers may share the
        # database). The renewer is the first background service, so it stops last: a clean
        # shutdown hands the claims over only once nothing here acts on them any more.
        self.claims = Claims(self.db, settings.lease_seconds)
        self.renewer = Renewer(self.claims)
        self.authenticator: Authenticator = Authenticator(self)
        self.authorizer: Authorizer = Authorizer(self)
        # Large request bodies are parsed in a process of their own (server.parsing_process).
        self.parser = ParserProcess()
        self.background: list[BackgroundService] = [self.renewer, self.parser]
        # Set when a shutdown signal arrives, before requests drain and background services stop.
        self.shutting_down = threading.Event()
        self.request_stats = RequestStats()  # for the Prometheus endpoint
        # More lines for /metrics, from the services that keep counters of their own.
        self.telemetry_sources: list[Callable[[], list[str]]] = []
        # Real-time endpoints: the supervisor of the model servers this server runs, and the
        # routes (hosting.route(account, region, name)) the runtime API sends invocations along.
        from stratum.hosting.service import HostingService

        self.hosting: HostingService = HostingService(self)
        self.add_background(self.hosting)
        self.providers: dict[str, Provider] = build_providers(self)

    def add_background(self, service: BackgroundService) -> None:
        self.background.append(service)

    def start_background(self) -> None:
        for service in self.background:
            log.info("starting %s", service.name)
            service.start()

    def stop_background(self) -> None:
        for service in reversed(self.background):
            try:
                service.stop()
            except Exception:
                log.exception("stopping %s failed", service.name)

    def invalidate_identity_caches(self, account_id: str | None = None) -> None:
        """Called after any IAM/STS write so the next request sees it: the cached credentials and
        principal policies of ``account_id`` (of every account when None)."""
        self.authenticator.invalidate(account_id)
        self.authorizer.invalidate(account_id)
