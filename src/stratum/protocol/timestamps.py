"""Timestamp conversions in the formats the AWS protocols use."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime for a timestamp member's wire value; ValueError for anything that is
    not one or lies outside what a datetime holds once in UTC (1e20, "inf", year 9999 at -12:00)."""
    try:
        return _parse(value).astimezone(UTC)
    except (OverflowError, OSError):  # fromtimestamp's and astimezone's range errors
        raise ValueError(f"Timestamp out of range: {value!r}") from None


def _parse(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
        try:
            return parsedate_to_datetime(text)
        except (TypeError, ValueError):
            pass
    raise ValueError(f"Invalid timestamp: {value!r}")


def to_epoch(value: datetime) -> float | int:
    ts = value.timestamp()
    return int(ts) if ts == int(ts) else round(ts, 3)


def to_iso8601(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def to_rfc822(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def format_timestamp(value: datetime, fmt: str) -> str | float | int:
    if fmt == "unixTimestamp":
        return to_epoch(value)
    if fmt == "rfc822":
        return to_rfc822(value)
    return to_iso8601(value)
