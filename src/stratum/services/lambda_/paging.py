"""Marker paging of the Lambda list operations (pure logic): the marker is the next item's offset."""

from __future__ import annotations

import base64
from typing import Any

from stratum.services.lambda_.names import invalid

DEFAULT_MAX_ITEMS = 50


def page(items: list[Any], marker: str | None, max_items: int | None) -> tuple[list[Any], str | None]:
    start = 0
    if marker:
        try:
            start = int(base64.urlsafe_b64decode(marker.encode()).decode())
        except (ValueError, UnicodeDecodeError):
            raise invalid(f"Invalid marker: {marker}") from None
    size = max_items or DEFAULT_MAX_ITEMS
    if not 1 <= size <= 10000:
        raise invalid("MaxItems must be between 1 and 10000.")
    chunk = items[start:start + size]
    more = start + size < len(items)
    return chunk, base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else None
