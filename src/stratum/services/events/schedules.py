"""Schedule expressions of scheduled rules: ``rate(value unit)`` and the six-field
``cron(minutes hours day-of-month month day-of-week year)`` of EventBridge (UTC), validated as
PutRule does and turned into the next time a rule fires."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_MINUTES = {"minute": 1, "hour": 60, "day": 1440}
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
# EventBridge numbers days of the week 1 (SUN) to 7 (SAT).
_DAYS = {d: i + 1 for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# How far ahead a cron expression is searched for its next time (a year that never comes).
_HORIZON_DAYS = 366 * 5


class ScheduleError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    expression: str
    rate_minutes: int | None = None
    cron: _Cron | None = None

    def next_after(self, after: datetime, minute_seconds: float = 60.0) -> datetime | None:
        """The first firing strictly after ``after``. A rate counts its minutes in
        ``minute_seconds`` (60 unless a test shortens the clock); cron uses the real clock."""
        if self.rate_minutes is not None:
            return after + timedelta(seconds=self.rate_minutes * minute_seconds)
        assert self.cron is not None
        return self.cron.next_after(after)


def parse(expression: str) -> Schedule:
    rate = _RATE.match(expression)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        # "rate(1 minute)" but "rate(5 minutes)": the unit agrees with the value, as EventBridge wants.
        if value <= 0 or (value == 1) != (not unit.endswith("s")):
            raise ScheduleError(expression)
        return Schedule(expression, rate_minutes=value * _UNIT_MINUTES[unit.rstrip("s")])
    cron = _CRON.match(expression)
    if cron is not None:
        return Schedule(expression, cron=_Cron.parse(cron.group(1)))
    raise ScheduleError(expression)


# -------------------------------------------------------------------------------------------- cron
DayTest = Callable[[int, int, int], bool]  # (year, month, day) -> fires that day


@dataclass(frozen=True)
class _Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    day_test: DayTest
    years: frozenset[int] | None

    @classmethod
    def parse(cls, body: str) -> _Cron:
        fields = body.split()
        if len(fields) != 6:
            raise ScheduleError(body)
        minute, hour, dom, month, dow, year = fields
        if (dom == "?") == (dow == "?"):
            raise ScheduleError(body)  # exactly one of the two day fields is "?"
        months = _values(month, 1, 12, _MONTHS)
        days = _dom_test(dom) if dow == "?" else _dow_test(dow)
        years = None if year == "*" else _values(year, 1970, 2199, {})

        def day_test(y: int, m: int, d: int) -> bool:
            return m in months and days(y, m, d)
        return cls(_values(minute, 0, 59, {}), _values(hour, 0, 23, {}), day_test, years)

    def next_after(self, after: datetime) -> datetime | None:
        start = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        for offset in range(_HORIZON_DAYS):
            current = day + timedelta(days=offset)
            if self.years is not None and current.year not in self.years:
                continue
            if not self.day_test(current.year, current.month, current.day):
                continue
            for hour in sorted(self.hours):
                for minute in sorted(self.minutes):
                    moment = datetime(current.year, current.month, current.day, hour, minute, tzinfo=UTC)
                    if moment >= start:
                        return moment
        return None


def _number(text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.upper()) if names else None
    if value is None:
        if not text.isdigit():
            raise ScheduleError(text)
        value = int(text)
    if not low <= value <= high:
        raise ScheduleError(text)
    return value


def _values(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(text)
            step = int(step_text)
        if part == "*":
            first, last = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            first, last = _number(a, low, high, names), _number(b, low, high, names)
            if first > last:
                raise ScheduleError(text)
        else:
            first = _number(part, low, high, names)
            last = high if step > 1 else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


def _dom_test(text: str) -> DayTest:
    if text == "L":
        return lambda y, m, d: d == calendar.monthrange(y, m)[1]
    if text.endswith("W") and text[:-1].isdigit():
        target = _number(text[:-1], 1, 31, {})
        return lambda y, m, d: d == _nearest_weekday(y, m, target)
    days = _values(text, 1, 31, {})
    return lambda y, m, d: d in days


def _nearest_weekday(year: int, month: int, day: int) -> int:
    last = calendar.monthrange(year, month)[1]
    day = min(day, last)
    weekday = calendar.weekday(year, month, day)  # Monday 0 .. Sunday 6
    if weekday == 5:
        return day - 1 if day > 1 else day + 2
    if weekday == 6:
        return day + 1 if day < last else day - 2
    return day


def _eb_weekday(y: int, m: int, d: int) -> int:
    return (calendar.weekday(y, m, d) + 1) % 7 + 1  # Monday 0 -> 2 (MON), Sunday 6 -> 1 (SUN)


def _dow_test(text: str) -> DayTest:
    if "#" in text:
        day_text, nth_text = text.split("#", 1)
        weekday = _number(day_text, 1, 7, _DAYS)
        nth = _number(nth_text, 1, 5, {})
        return lambda y, m, d: _eb_weekday(y, m, d) == weekday and (d - 1) // 7 + 1 == nth
    if text.endswith("L") and len(text) > 1:
        weekday = _number(text[:-1], 1, 7, _DAYS)
        return lambda y, m, d: _eb_weekday(y, m, d) == weekday and d + 7 > calendar.monthrange(y, m)[1]
    if text == "L":
        return lambda y, m, d: _eb_weekday(y, m, d) == 7
    days = _values(text, 1, 7, _DAYS)
    return lambda y, m, d: _eb_weekday(y, m, d) in days
