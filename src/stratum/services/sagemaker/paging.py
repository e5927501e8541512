"""Opaque NextToken values for the SageMaker list/search operations.

A token carries the offset of the next page plus a short digest of the query it belongs to, so a
token replayed against a different query is rejected instead of silently skipping rows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Table, select

from stratum.services.sagemaker.errors import validation

T = TypeVar("T")

DEFAULT_MAX_RESULTS = 10


def listing_scope(kind: str, owner: tuple[str, ...], params: dict[str, Any]) -> dict[str, Any]:
    """What a NextToken is bound to: the listing, its owner and every filter except paging."""
    return {"k": kind, "o": owner, **{k: v for k, v in params.items() if k not in ("NextToken", "MaxResults")}}


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


def named_listing(conn: Connection, table: Table, kind: str, account: str, region: str, params: dict[str, Any],
                  *, sort_columns: dict[str, Any] | None = None,
                  where: Callable[[Any], Any] | None = None) -> tuple[list[Row[Any]], str | None]:
    """One page of a List* operation over an account's named resources (models, endpoint configs,
    endpoints): NameContains on the name, Creation/LastModifiedTime windows, SortBy Name,
    CreationTime (the default) or ``sort_columns``, newest first by default, ties by name; ``where``
    adds the operation's own filters."""
    scope = listing_scope(kind, (account, region), params)
    offset, limit = page_window(params, scope)
    c = table.c
    query = select(table).where((c.account_id == account) & (c.region == region))
    if params.get("NameContains"):
        query = query.where(c.name_key.contains(params["NameContains"].lower(), autoescape=True))
    for param, column, later in (("CreationTimeAfter", "created_at", True), ("CreationTimeBefore", "created_at", False),
                                 ("LastModifiedTimeAfter", "last_modified_at", True),
                                 ("LastModifiedTimeBefore", "last_modified_at", False)):
        value = params.get(param)  # only the members the operation's input has can be here
        if value is not None:
            query = query.where(c[column] > value if later else c[column] < value)
    if where is not None:
        query = where(query)
    sort = {"Name": c.name_key, **(sort_columns or {})}.get(params.get("SortBy") or "", c.created_at)
    descending = (params.get("SortOrder") or "Descending") == "Descending"
    query = query.order_by(*[k.desc() if descending else k.asc() for k in (sort, c.name_key)])
    return sql_page(list(conn.execute(query.limit(limit + 1).offset(offset))), offset, limit, scope)
