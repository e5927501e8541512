"""Request-side model: who is calling, what they ask for, and the condition context."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

CALLER_KINDS: Final = frozenset({"user", "root", "assumed-role", "service", "federated", "anonymous"})


class _Missing:
    """Sentinel type for "key absent from the request context" (``None`` is a legal value)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal making the request.

    ``kind`` is one of ``user``, ``root``, ``assumed-role``, ``service``, ``federated`` or
    ``anonymous``. For role sessions ``arn`` is the session ARN
    (``arn:aws:sts::acct:assumed-role/Name/session``) and ``role_arn`` the role's IAM ARN
    including its path, because a policy naming the role must match all of its sessions.
    """

    arn: str
    account: str
    kind: str
    role_arn: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in CALLER_KINDS:
            raise ValueError(f"unknown caller kind {self.kind!r}; expected one of {sorted(CALLER_KINDS)}")

    @classmethod
    def from_arn(cls, arn: str, *, role_arn: str | None = None) -> Caller:
        """Build a caller from a user, root or assumed-role ARN.

        A session ARN carries no role path, so pass ``role_arn`` when the role has one.
        """
        parts = arn.split(":", 5)
        if len(parts) != 6 or parts[0] != "arn":
            raise ValueError(f"not an ARN: {arn!r}")
        account, resource = parts[4], parts[5]
        if parts[2] == "iam" and resource == "root":
            return cls(arn=arn, account=account, kind="root")
        if parts[2] == "iam" and resource.startswith("user/"):
            return cls(arn=arn, account=account, kind="user")
        if parts[2] == "sts" and resource.startswith("assumed-role/"):
            role_name = resource.split("/")[1]
            derived = f"arn:{parts[1]}:iam::{account}:role/{role_name}"
            return cls(arn=arn, account=account, kind="assumed-role", role_arn=role_arn or derived)
        if parts[2] == "sts" and resource.startswith("federated-user/"):
            return cls(arn=arn, account=account, kind="federated")
        raise ValueError(f"unsupported principal ARN: {arn!r}")


@dataclass(slots=True)
class AuthzRequest:
    """One authorization question: may ``caller`` perform ``action`` on ``resource``?

    ``context`` holds condition keys (names are case-insensitive); values are ``str``,
    ``bool``, ``int``, ``float``, ``datetime``, ``bytes`` or a list of those.
    ``resource_account`` is the owner of the resource; ``None`` means the caller's own account.
    """

    caller: Caller
    action: str
    resource: str = "*"
    resource_account: str | None = None
    context: Mapping[str, Any] = field(default_factory=dict)


def _principal_arn(ctx: EvalContext) -> Any:
    caller = ctx.caller
    if caller.kind == "assumed-role" and caller.role_arn:
        # AWS reports the role (not the session) as aws:PrincipalArn for role sessions.
        return caller.role_arn
    if caller.kind in ("anonymous", "service"):
        return MISSING
    return caller.arn


def _principal_account(ctx: EvalContext) -> Any:
    return ctx.caller.account or MISSING


def _username(ctx: EvalContext) -> Any:
    caller = ctx.caller
    if caller.kind != "user":
        return MISSING  # AWS only sets aws:username for IAM users.
    return caller.arn.rsplit("/", 1)[-1]


_PRINCIPAL_TYPES: Final = {
    "user": "User",
    "root": "Account",
    "assumed-role": "AssumedRole",
    "federated": "FederatedUser",
    "anonymous": "Anonymous",
}


def _principal_type(ctx: EvalContext) -> Any:
    return _PRINCIPAL_TYPES.get(ctx.caller.kind, MISSING)


def _principal_service(ctx: EvalContext) -> Any:
    return ctx.caller.service or MISSING


def _resource_account(ctx: EvalContext) -> Any:
    return ctx.resource_account or MISSING


def _current_time(ctx: EvalContext) -> Any:
    return datetime.now(UTC)


def _epoch_time(ctx: EvalContext) -> Any:
    return int(time.time())


# Keys AWS always puts in the request context; derived from the caller only when the server
# did not supply them, so explicit context always wins.
_DERIVED: Final[dict[str, Callable[[EvalContext], Any]]] = {
    "aws:principalarn": _principal_arn,
    "aws:principalaccount": _principal_account,
    "aws:username": _username,
    "aws:principaltype": _principal_type,
    "aws:principalservicename": _principal_service,
    "aws:resourceaccount": _resource_account,
    "aws:currenttime": _current_time,
    "aws:epochtime": _epoch_time,
}


class EvalContext:
    """Per-evaluation view of the request context with lower-cased key names."""

    __slots__ = ("values", "caller", "resource_account")

    def __init__(self, request: AuthzRequest) -> None:
        raw = request.context
        self.values: dict[str, Any] = {k.lower(): v for k, v in raw.items()} if raw else {}
        self.caller = request.caller
        self.resource_account = request.resource_account

    def get(self, key: str) -> Any:
        """Value for a lower-cased key, or ``MISSING``."""
        value = self.values.get(key, MISSING)
        if value is MISSING:
            derive = _DERIVED.get(key)
            if derive is not None:
                return derive(self)
        return value
