"""The shared datetime type stores on SQLite exactly what SQLAlchemy's own processing stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.engine import Dialect

from stratum import jsonfast
from stratum.store import schema
from stratum.store.schema import UtcDateTime


@pytest.fixture(scope="module")
def dialect() -> Dialect:
    # As stratum.store.db configures it.
    return create_engine("sqlite://", json_serializer=jsonfast.dumps).dialect


DATETIMES = [
    datetime(2026, 11, 22, 1, 2, 3, 456789, UTC),
    datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC),  # microsecond 0: still six digits
    datetime(2026, 11, 22, 1, 2, 3),  # naive: taken as UTC
    datetime(2026, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=2))),  # the previous day in UTC
    datetime(2025, 12, 31, 22, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),  # the next year
    datetime(1, 1, 1, 0, 0, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, UTC),
    datetime(999, 3, 4, 5, 6, 7, 8),
    None,
]


def _sqlalchemy_datetime_text(value: datetime | None, dialect: Dialect) -> Any:
    """TypeDecorator's own chain: process_bind_param, then SQLite DATETIME's %-format."""
    impl = SQLITE_DATETIME().bind_processor(dialect)
    return impl(UtcDateTime().process_bind_param(value, dialect))


@pytest.mark.parametrize("value", DATETIMES, ids=str)
def test_datetime_text_is_sqlalchemys(dialect: Dialect, value: datetime | None) -> None:
    process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is schema._sqlite_datetime_text  # the fast path is the one in use
    assert process(value) == _sqlalchemy_datetime_text(value, dialect)


@pytest.mark.parametrize("value", DATETIMES, ids=str)
def test_datetime_reads_back_as_utc(dialect: Dialect, value: datetime | None) -> None:
    parse = UtcDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert parse is schema._sqlite_datetime_value
    back = parse(_sqlalchemy_datetime_text(value, dialect))
    if value is None:
        assert back is None
    else:
        assert back.tzinfo is UTC
        assert back == UtcDateTime().process_result_value(datetime.fromisoformat(_sqlalchemy_datetime_text(value, dialect)), dialect)
        assert back == (value if value.tzinfo else value.replace(tzinfo=UTC))


def test_datetime_with_offset_text_reads_back_in_utc(dialect: Dialect) -> None:
    parse = UtcDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert parse is not None
    # Not written by Stratum, but readable: an offset is honoured.
    assert parse("2026-11-22 01:00:00.000000") == datetime(2026, 11, 22, 1, tzinfo=UTC)
    assert parse("2026-11-22 01:00:00.000000+02:00") == datetime(2026, 11, 21, 23, tzinfo=UTC)


def test_other_backends_keep_sqlalchemys_processing() -> None:
    pg = create_engine("postgresql+psycopg://", json_serializer=jsonfast.dumps).dialect
    assert UtcDateTime().dialect_impl(pg).bind_processor(pg) is not schema._sqlite_datetime_text


def test_datetime_text_for_repeated_and_alternating_values(dialect: Dialect) -> None:
    process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    a = datetime(2026, 11, 22, 1, 2, 3, 4, UTC)
    b = datetime(2026, 11, 22, 1, 2, 3, 4, timezone(timedelta(hours=1)))
    for value in (a, a, b, b, a, None, a, datetime(2026, 11, 22, 1, 2, 3, 4)):
        assert process(value) == _sqlalchemy_datetime_text(value, dialect)
