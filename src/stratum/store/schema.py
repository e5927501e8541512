"""The single MetaData all service table modules register on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Dialect

metadata = MetaData(naming_convention={
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)

    # SQLite stores datetimes as text, which SQLAlchemy writes with a %-format of seven named
    # fields: a few microseconds per value, and a stored execution has eight of them. On SQLite's
    # default storage format the same text is written and read by the functions below, at a
    # fraction of the cost (tests hold both directions equal to SQLAlchemy's chain).
    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        if _sqlite_default_datetime(self, dialect):
            return _sqlite_datetime_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any] | None:
        if _sqlite_default_datetime(self, dialect):
            return _sqlite_datetime_value
        return super().result_processor(dialect, coltype)


def _sqlite_default_datetime(decorator: UtcDateTime, dialect: Dialect) -> bool:
    impl = decorator.impl_instance.dialect_impl(dialect)
    return (dialect.name == "sqlite" and isinstance(impl, SQLITE_DATETIME)
            and impl._storage_format == SQLITE_DATETIME._storage_format and impl._reg is None)


def _sqlite_datetime_text(value: datetime | None) -> str | None:
    """What UtcDateTime's bind processing and SQLite's DATETIME store: UTC, no offset, microseconds."""
    global _last_text
    if value is None:
        return None
    last = _last_text
    if last[0] is value:  # a row's timestamps are often one datetime (created = last modified)
        return last[1]
    if value.tzinfo is None:
        text = value.isoformat(" ", "microseconds")
    else:
        # Not isoformat: for an aware datetime it formats the offset through tzinfo.utcoffset,
        # which costs more than the rest.
        v = value.astimezone(UTC)  # a UTC datetime is returned as it is
        text = _FORMAT % (v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond)
    _last_text = (value, text)
    return text


_FORMAT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_last_text: tuple[datetime | None, str | None] = (None, None)  # replaced whole: safe across threads


def _sqlite_datetime_value(value: str | None) -> datetime | None:
    """SQLite DATETIME's parsing (datetime.fromisoformat) then UtcDateTime's, in one step for the
    text Stratum writes ("YYYY-MM-DD HH:MM:SS.ffffff")."""
    if value is None:
        return None
    if len(value) == 26 and value[19] == ".":
        return _fromisoformat(value + "+00:00")  # the offset makes it aware, with tzinfo UTC itself
    return _as_utc(_fromisoformat(value))


def _as_utc(value: datetime) -> datetime:
    """A naive datetime is UTC; an aware one is converted."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_fromisoformat = datetime.fromisoformat


JsonType = JSON().with_variant(JSON(none_as_null=True), "postgresql")


def load_all_tables() -> MetaData:
    """Import every ``tables`` module of the package so the metadata is complete (for migrations)."""
    import importlib
    import pkgutil

    import stratum

    for mod in pkgutil.walk_packages(stratum.__path__, "stratum."):
        if mod.name.rsplit(".", 1)[-1] == "tables":
            importlib.import_module(mod.name)
    return metadata
