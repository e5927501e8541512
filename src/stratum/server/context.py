"""The per-request context handed to service providers, and the provider base class.

Providers are plain classes with one method per operation (snake_case of the operation name) that
take (ctx, params) and return the output dict in the API's own shape. Before acting, every method
asks ``ctx.authorize`` with the action, the resource ARN and any service condition keys; the
dispatcher refuses to return a response from a handler that never asked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from stratum.auth.identity import Identity
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class RequestContext:
    app: AppState
    request_id: str
    service: str
    operation: str
    region: str
    identity: Identity
    http: HttpRequest
    authorized: bool = False
    extra_context: dict[str, Any] = field(default_factory=dict)
    # The operation's document checks (server.parsing_process.PRECHECKS) ran while parsing; what
    # they found is raised by replay_precheck where the provider makes that check.
    prechecked: bool = False
    precheck_error: ServiceError | None = None

    def replay_precheck(self) -> None:
        if self.precheck_error is not None:
            raise self.precheck_error

    @property
    def account_id(self) -> str:
        return self.identity.account_id

    def authorize(self, action: str, resource: str, *, resource_account: str | None = None,
                  resource_policy: str | dict[str, Any] | None = None, context: dict[str, Any] | None = None,
                  resource_policy_required: bool = False) -> None:
        """Raise the service's AccessDenied error unless policies allow ``action`` on ``resource``."""
        self.app.authorizer.authorize(self, action, resource, resource_account=resource_account,
                                      resource_policy=resource_policy, context=context,
                                      resource_policy_required=resource_policy_required)
        self.authorized = True

    def skip_authorization(self, reason: str) -> None:
        """For the few calls AWS allows without any policy (e.g. sts:GetCallerIdentity)."""
        del reason
        self.authorized = True

    def arn(self, service: str, resource: str, *, account: str | None = None, region: str | None = None) -> str:
        return f"arn:aws:{service}:{self.region if region is None else region}:{account or self.account_id}:{resource}"


def blocking(func: F) -> F:
    """Mark a handler that does slow I/O (object data): the dispatcher runs it in a worker thread."""
    func.__stratum_blocking__ = True  # type: ignore[attr-defined]
    return func


_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z0-9])([A-Z])")


@functools.lru_cache(maxsize=4096)
def snake_case(name: str) -> str:
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()


class Provider:
    """Base for service providers; ``service`` is the botocore service name."""

    service: str = ""

    def __init__(self, app: AppState) -> None:
        self.app = app

    def prepare_request(self, request: HttpRequest) -> None:
        """Hook to adjust routing before parsing (S3 virtual-hosted buckets)."""

    def handler(self, operation: str) -> Callable[[RequestContext, dict[str, Any]], Any] | None:
        return getattr(self, snake_case(operation), None)

    _dispatch: dict[str, tuple[Callable[[RequestContext, dict[str, Any]], Any] | None, bool]] | None = None

    def dispatch(self, operation: str) -> tuple[Callable[[RequestContext, dict[str, Any]], Any] | None, bool]:
        """The operation's handler (see handler) and whether it is marked @blocking, found once per
        operation: asking a bound method for a marker it does not have raises and catches an
        AttributeError, about a microsecond on every request."""
        table = self._dispatch
        if table is None:
            table = self._dispatch = {}
        entry = table.get(operation)
        if entry is None:
            found = self.handler(operation)
            entry = table[operation] = (found, bool(getattr(found, "__stratum_blocking__", False)))
        return entry
