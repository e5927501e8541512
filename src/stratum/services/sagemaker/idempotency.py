"""ClientRequestToken handling: a retried request with the same token gets the first call's answer.

boto3 fills the token in automatically (it is an idempotencyToken member), so every call carries
one; only a caller that reuses a token on purpose, or a network retry, ever hits a stored entry.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from stratum.services.sagemaker.errors import conflict
from stratum.services.sagemaker.tables import sagemaker_request_tokens as tokens

# How long a token is remembered. AWS documents no window for SageMaker; a day covers any retry.
TOKEN_TTL = timedelta(hours=24)


def fingerprint(params: dict[str, Any]) -> str:
    body = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def recall(conn: Connection, account: str, region: str, operation: str, params: dict[str, Any],
           now: datetime) -> dict[str, Any] | None:
    """The stored result for this request's token, or None if the token is new (or expired)."""
    token = params.get("ClientRequestToken")
    if not token:
        return None
    row = conn.execute(select(tokens.c.fingerprint, tokens.c.result, tokens.c.created_at).where(
        (tokens.c.account_id == account) & (tokens.c.region == region)
        & (tokens.c.operation == operation) & (tokens.c.token == token))).first()
    if row is None or row.created_at < now - TOKEN_TTL:
        return None
    if row.fingerprint != fingerprint(params):
        raise conflict(f"ClientRequestToken '{token}' was already used for a {operation} request "
                       "with different parameters.")
    return dict(row.result)


def remember(conn: Connection, account: str, region: str, operation: str, params: dict[str, Any],
             result: dict[str, Any], now: datetime) -> None:
    token = params.get("ClientRequestToken")
    if not token:
        return
    # Expired entries go first (cheap with the created_at index), which also frees an expired
    # entry with this very token.
    conn.execute(delete(tokens).where(tokens.c.created_at < now - TOKEN_TTL))
    conn.execute(insert(tokens).values(account_id=account, region=region, operation=operation, token=token,
                                       fingerprint=fingerprint(params), result=result, created_at=now))
