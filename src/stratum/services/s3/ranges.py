"""HTTP Range handling as S3 does it: one ``bytes=`` range; anything unparseable is ignored (whole
object, 200) and an unsatisfiable range is a 416 InvalidRange."""

from __future__ import annotations

import re

from stratum.protocol.errors import ServiceError

_RANGE_RE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def invalid_range(requested: str, size: int) -> ServiceError:
    return ServiceError("InvalidRange", "The requested range is not satisfiable", 416,
                        fields={"RangeRequested": requested, "ActualObjectSize": size},
                        headers={"Content-Range": f"bytes */{size}"})


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive byte positions to return, or None for the whole object."""
    if not header:
        return None
    m = _RANGE_RE.fullmatch(header)
    if m is None:
        return None  # multiple ranges or other syntax: S3 returns the whole object
    first_s, last_s = m.groups()
    if not first_s and not last_s:
        return None
    if not first_s:  # suffix range: the last N bytes
        n = int(last_s)
        if n == 0 or size == 0:
            raise invalid_range(header, size)
        return max(0, size - n), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last_s and last < first:
        return None  # syntactically invalid per RFC 9110: ignored
    if first >= size:
        raise invalid_range(header, size)
    return first, min(last, size - 1)


def content_range(first: int, last: int, size: int) -> str:
    return f"bytes {first}-{last}/{size}"
