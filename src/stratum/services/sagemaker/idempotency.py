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

import orjson
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
    """SHA-256 of the request without its token: sorted keys, compact, ASCII-escaped JSON (what
    json.dumps(sort_keys=True) writes; fingerprints are stored, so the text never changes).
    orjson writes the same text for values without floats, non-ASCII characters or DEL (which
    json.dumps escapes), which is what requests hold almost always; anything else is written by
    the standard library."""
    body = {k: v for k, v in params.items() if k != "ClientRequestToken"}
    try:
        raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        raw = None
    if raw is None or not raw.isascii() or b"\x7f" in raw or not _plain(body):
        raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(raw).hexdigest()


def _plain(value: Any) -> bool:
    """Only strings, integers, booleans and None, in dicts and lists: orjson and json.dumps spell
    floats differently (1e-7 / 1e-07, NaN / null), and json.dumps writes other types with str()."""
    kind = type(value)
    if kind is dict:
        return all(_plain(v) for v in value.values())
    if kind is list:
        return all(_plain(v) for v in value)
    return kind is str or kind is int or kind is bool or value is None


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
