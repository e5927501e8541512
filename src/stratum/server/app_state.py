"""Everything a running server holds: settings, database, caches and service providers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratum.config import Settings
from stratum.store.db import Database

if TYPE_CHECKING:
    from stratum.auth.authenticator import Authenticator
    from stratum.auth.authorizer import Authorizer
    from stratum.server.context import Provider


class AppState:
    def __init__(self, settings: Settings, db: Database | None = None) -> None:
        from stratum.auth.authenticator import Authenticator
        from stratum.auth.authorizer import Authorizer
        from stratum.services.registry import build_providers

        self.settings = settings
        self.db = db or Database(settings.db_url)
        self.authenticator: Authenticator = Authenticator(self)
        self.authorizer: Authorizer = Authorizer(self)
        self.providers: dict[str, Provider] = build_providers(self)

    def invalidate_identity_caches(self) -> None:
        """Called after any IAM/STS write so the next request sees it."""
        self.authenticator.invalidate()
        self.authorizer.invalidate()
