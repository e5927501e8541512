"""Who is calling: the authenticated identity attached to every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Identity:
    account_id: str
    arn: str  # user ARN, account root ARN, or assumed-role session ARN
    kind: str  # "user" | "root" | "assumed-role" | "anonymous"
    principal_id: str  # aws:userid — AIDA... for users, "AROA...:session" for role sessions
    access_key: str | None = None
    user_name: str | None = None
    role_name: str | None = None
    role_arn: str | None = None
    session_name: str | None = None
    session_policy: str | None = None  # inline session policy document (AssumeRole Policy)
    session_policy_arns: tuple[str, ...] = ()
    expiration: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Identity(account_id="", arn="*", kind="anonymous", principal_id="anonymous")
