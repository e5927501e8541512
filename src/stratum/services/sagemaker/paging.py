"""Opaque NextToken values for the SageMaker list/search operations.

A token carries the offset of the next page plus a short digest of the query it belongs to, so a
token replayed against a different query is rejected instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from stratum.services.sagemaker.errors import validation

T = TypeVar("T")

DEFAULT_MAX_RESULTS = 10


def _scope_digest(scope: Any) -> str:
    raw = json.dumps(scope, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def encode_token(offset: int, scope: Any) -> str:
    raw = json.dumps({"o": offset, "q": _scope_digest(scope)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str | None, scope: Any) -> int:
    if not token:
        return 0
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        offset = data["o"]
        digest = data["q"]
    except (ValueError, KeyError, TypeError):
        raise validation("Invalid pagination token: NextToken is not valid") from None
    if not isinstance(offset, int) or offset < 0 or digest != _scope_digest(scope):
        raise validation("Invalid pagination token: NextToken does not belong to this request")
    return offset


def page_window(params: dict[str, Any], scope: Any, default: int = DEFAULT_MAX_RESULTS) -> tuple[int, int]:
    """(offset, limit) of the requested page."""
    return decode_token(params.get("NextToken"), scope), int(params.get("MaxResults") or default)


def slice_page(items: Sequence[T], offset: int, limit: int, scope: Any) -> tuple[list[T], str | None]:
    """Cut one page out of an in-memory result list."""
    page = list(items[offset:offset + limit])
    more = offset + limit < len(items)
    return page, encode_token(offset + limit, scope) if more else None


def sql_page(rows: list[T], offset: int, limit: int, scope: Any) -> tuple[list[T], str | None]:
    """For queries run with LIMIT limit+1: trim the probe row and mint the next token."""
    if len(rows) > limit:
        return rows[:limit], encode_token(offset + limit, scope)
    return rows, None
