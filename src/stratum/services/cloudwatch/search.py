"""The search expressions of SEARCH(): which of an account's metrics a query names.

``{Namespace,DimA,DimB}`` keeps the metrics of that namespace whose dimension names are exactly
DimA and DimB; ``MetricName="x"``, ``Namespace="x"`` and ``Dim="value"`` match exactly; any other
term matches part of the metric's name, namespace, or a dimension name or value, ignoring case.
Terms are ANDed (OR and NOT are not supported)."""

from __future__ import annotations

import re

from stratum.services.cloudwatch.datapoints import MetricRef
from stratum.services.cloudwatch.expressions import ExpressionError

_SCHEMA = re.compile(r"\{([^}]*)\}")
_TERM = re.compile(r'([A-Za-z0-9_:/.\-]+)\s*=\s*("[^"]*"|[^\s"]+)|"([^"]*)"|(\S+)')
MAX_RESULTS = 500


def _unquote(text: str) -> str:
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


class SearchQuery:
    def __init__(self, text: str) -> None:
        self.namespace: str | None = None
        self.dimension_names: set[str] | None = None
        self.exact: list[tuple[str, str]] = []
        self.partial: list[str] = []
        schema = _SCHEMA.search(text)
        if schema:
            parts = [_unquote(p) for p in schema.group(1).split(",")]
            self.namespace, self.dimension_names = parts[0], {p for p in parts[1:] if p}
            text = text[:schema.start()] + text[schema.end():]
        for m in _TERM.finditer(text):
            if m.group(1):
                self.exact.append((m.group(1), _unquote(m.group(2))))
            elif m.group(3) is not None:
                self.partial.append(m.group(3).lower())
            elif m.group(4).upper() == "AND":
                continue
            elif m.group(4).upper() in ("OR", "NOT"):
                raise ExpressionError(f"{m.group(4)} is not supported in search expressions")
            else:
                self.partial.append(m.group(4).lower())

    def matches(self, ref: MetricRef) -> bool:
        dims = dict(ref.dimensions)
        if self.namespace is not None and ref.namespace != self.namespace:
            return False
        if self.dimension_names is not None and set(dims) != self.dimension_names:
            return False
        for name, value in self.exact:
            have = ref.name if name == "MetricName" else ref.namespace if name == "Namespace" else dims.get(name)
            if have != value:
                return False
        words = [ref.name.lower(), ref.namespace.lower(), *(d.lower() for pair in ref.dimensions for d in pair)]
        return all(any(term in word for word in words) for term in self.partial)


def labels(found: list[MetricRef]) -> list[str]:
    """A label per series found: its dimension values, with the metric name when they differ."""
    several_names = len({ref.name for ref in found}) > 1
    out = []
    for ref in found:
        parts = ([ref.name] if several_names or not ref.dimensions else []) + [v for _, v in ref.dimensions]
        out.append(" ".join(parts))
    return out
