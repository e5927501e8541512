"""ClientRequestToken handling: a retried request with the same token gets the first call's answer.

boto3 fills the token in automatically (it is an idempotencyToken member), so every call carries
one; only a caller that reuses a token on purpose, or a network retry, ever hits a stored entry.
StartPipelineExecution, the hot one, keeps its token on the execution row instead (see
pipelines.record_execution); the TTL and the fingerprint are the same.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from stratum.services.sagemaker.errors import conflict
from stratum.services.sagemaker.tables import sagemaker_request_tokens as tokens

# How long a token is remembered. AWS documents no window for SageMaker; a day covers any retry.
TOKEN_TTL = timedelta(hours=24)
# Expired tokens are swept at most this often (per process), not on every write.
SWEEP_INTERVAL = timedelta(minutes=5)

# Built once: every Create/Stop/Delete/Retry goes through here.
_RECALL = select(tokens.c.fingerprint, tokens.c.result, tokens.c.created_at).where(
    (tokens.c.account_id == bindparam("account")) & (tokens.c.region == bindparam("region"))
    & (tokens.c.operation == bindparam("operation")) & (tokens.c.token == bindparam("token")))
_FORGET = delete(tokens).where((tokens.c.account_id == bindparam("account")) & (tokens.c.region == bindparam("region"))
                               & (tokens.c.operation == bindparam("operation")) & (tokens.c.token == bindparam("token")))
_SWEEP = delete(tokens).where(tokens.c.created_at < bindparam("cutoff"))
_REMEMBER = insert(tokens)
_last_sweep: datetime | None = None


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
    key = {"account": account, "region": region, "operation": operation, "token": token}
    row = conn.execute(_RECALL, key).first()
    if row is None:
        return None
    if row.created_at < now - TOKEN_TTL:
        conn.execute(_FORGET, key)  # expired: the token is new again, and remember() will reuse it
        return None
    if row.fingerprint != fingerprint(params):
        raise conflict(f"ClientRequestToken '{token}' was already used for a {operation} request "
                       "with different parameters.")
    return dict(row.result)


def remember(conn: Connection, account: str, region: str, operation: str, params: dict[str, Any],
             result: dict[str, Any], now: datetime) -> None:
    """Store the result under the request's token; call after recall() in the same transaction."""
    token = params.get("ClientRequestToken")
    if not token:
        return
    global _last_sweep
    if _last_sweep is None or now - _last_sweep > SWEEP_INTERVAL:
        _last_sweep = now
        conn.execute(_SWEEP, {"cutoff": now - TOKEN_TTL})
    try:
        conn.execute(_REMEMBER, {"account_id": account, "region": region, "operation": operation, "token": token,
                                 "fingerprint": fingerprint(params), "result": result, "created_at": now})
    except IntegrityError:
        # A concurrent request with the same token committed first (PostgreSQL); this one rolls back.
        raise conflict(f"A {operation} request with ClientRequestToken '{token}' is already in progress.") from None
