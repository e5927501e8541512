"""nextToken / maxResults for the RAM list operations.

A token is the offset of the next page plus a digest of the request it belongs to, so a token
replayed against different filters is refused (InvalidNextTokenException) instead of skipping rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from stratum.services.ram.errors import invalid_next_token

T = TypeVar("T")

# RAM's documented maximum page; without maxResults a page holds up to this many items.
MAX_RESULTS = 500


def _digest(scope: Any) -> str:
    raw = json.dumps(scope, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _scope(caller: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"c": caller, "op": operation, **{k: v for k, v in params.items() if k not in ("nextToken", "maxResults")}}


def page(items: Sequence[T], params: dict[str, Any], caller: str, operation: str) -> tuple[list[T], str | None]:
    """One page of ``items`` and the token of the next page (None on the last one)."""
    scope = _scope(caller, operation, params)
    offset = 0
    token = params.get("nextToken")
    if token:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
            offset, digest = data["o"], data["q"]
        except (ValueError, KeyError, TypeError):
            raise invalid_next_token() from None
        if not isinstance(offset, int) or offset < 0 or digest != _digest(scope):
            raise invalid_next_token()
    limit = int(params.get("maxResults") or MAX_RESULTS)
    chunk = list(items[offset:offset + limit])
    if offset + limit >= len(items):
        return chunk, None
    raw = json.dumps({"o": offset + limit, "q": _digest(scope)}, separators=(",", ":"))
    return chunk, base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
