"""clientToken handling: a retried RAM request with the same token gets the first call's answer,
and the same token with different parameters is an IdempotentParameterMismatchException.

boto3 does not fill RAM's clientToken in, so only callers that pass one are remembered; a call
without one gets a fresh token back, as RAM generates one.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.exc import IntegrityError

from stratum.protocol.timestamps import to_epoch
from stratum.services.ram.errors import idempotent_mismatch
from stratum.services.ram.tables import ram_client_tokens as tokens

TOKEN_TTL = timedelta(hours=24)


def fingerprint(params: dict[str, Any]) -> str:
    body = {k: v for k, v in params.items() if k != "clientToken"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def token_of(params: dict[str, Any]) -> str:
    return str(params.get("clientToken") or uuid.uuid4())


def _where(account: str, region: str, operation: str, token: str) -> Any:
    return ((tokens.c.account_id == account) & (tokens.c.region == region) & (tokens.c.operation == operation)
            & (tokens.c.token == token))


def recall(conn: Connection, account: str, region: str, operation: str, params: dict[str, Any],
           now: datetime) -> dict[str, Any] | None:
    token = params.get("clientToken")
    if not token:
        return None
    where = _where(account, region, operation, token)
    row = conn.execute(select(tokens.c.fingerprint, tokens.c.result, tokens.c.created_at).where(where)).first()
    if row is None:
        return None
    if row.created_at < now - TOKEN_TTL:
        conn.execute(delete(tokens).where(where))
        return None
    if row.fingerprint != fingerprint(params):
        raise idempotent_mismatch(token, operation)
    return dict(row.result)


def _jsonable(value: Any) -> Any:
    # Timestamps are kept as the epoch seconds rest-json sends, which the serializer passes through.
    if isinstance(value, datetime):
        return to_epoch(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def remember(conn: Connection, account: str, region: str, operation: str, params: dict[str, Any],
             result: dict[str, Any], now: datetime) -> None:
    token = params.get("clientToken")
    if not token:
        return
    conn.execute(delete(tokens).where(tokens.c.created_at < now - TOKEN_TTL))
    try:
        conn.execute(insert(tokens).values(account_id=account, region=region, operation=operation, token=token,
                                           fingerprint=fingerprint(params), result=_jsonable(result),
                                           created_at=now))
    except IntegrityError:
        # A concurrent request with the same token committed first; this one rolls back.
        raise idempotent_mismatch(token, operation) from None
