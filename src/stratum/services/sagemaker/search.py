"""The SageMaker Search expression language, evaluated over output-shaped records.

Pure: records are the dicts the Search API returns (e.g. the ``Pipeline`` model with ``Tags``),
and property types come from the botocore shape of that model, so a new searchable resource needs
no code here: ``SearchSchema(model.shape_for("TrainingJob"))`` and its records.

Semantics (from the SageMaker Filter/SearchExpression reference):
- Filter: Name + Operator + Value; a Value without Operator means Equals; neither means Exists.
- Greater*/Less* work on numbers and timestamps only; Contains on text only (case-insensitive).
- In takes a comma-separated list of values.
- ``Tags.<key>`` addresses a tag's value; a property inside a list matches if any element does.
- NestedFilters: every filter must hold for the *same* element of the nested list.
- SubExpressions and the expression's own Filters/NestedFilters combine with Operator (And).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from botocore.model import Shape

from stratum.protocol.timestamps import parse_timestamp
from stratum.services.sagemaker.errors import validation

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

_NUMBER = ("integer", "long", "float", "double")
_ORDERING = {"GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo"}
_MISSING = object()


class SearchSchema:
    """Property names and types of one searchable resource, from its botocore shape."""

    def __init__(self, shape: Shape, resource: str | None = None) -> None:
        self.shape = shape
        self.resource = resource or shape.name

    def kind(self, name: str) -> str:
        """The botocore type of a property path ("string", "timestamp", "list", ...)."""
        if name.startswith("Tags.") and "Tags" in self.shape.members:
            if len(name) == len("Tags."):
                raise self._unknown(name)
            return "string"
        shape: Shape = self.shape
        for part in name.split("."):
            while shape.type_name == "list":
                shape = shape.member  # type: ignore[attr-defined]
            members = getattr(shape, "members", None)
            if not members or part not in members:
                raise self._unknown(name)
            shape = members[part]
        return shape.type_name

    def _unknown(self, name: str) -> Exception:
        return validation(f"'{name}' is not a valid property name for resource type {self.resource}.")


def values_at(record: Record, name: str) -> list[Any]:
    """Every value a property path reaches (lists fan out); [] when absent."""
    if name.startswith("Tags."):
        key = name[len("Tags."):]
        return [t.get("Value") for t in record.get("Tags") or [] if t.get("Key") == key]
    current: list[Any] = [record]
    for part in name.split("."):
        found: list[Any] = []
        for item in current:
            if isinstance(item, dict):
                value = item.get(part, _MISSING)
                if value is _MISSING or value is None:
                    continue
                if isinstance(value, list):
                    found.extend(value)
                else:
                    found.append(value)
        current = found
    return current


def _typed(kind: str, name: str, text: str) -> Any:
    try:
        if kind in _NUMBER:
            return float(text)
        if kind == "timestamp":
            return parse_timestamp(text)
    except (ValueError, OverflowError):
        raise validation(f"Value '{text}' is not a valid {'number' if kind in _NUMBER else 'timestamp'} "
                         f"for property '{name}'.") from None
    if kind == "boolean":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise validation(f"Value '{text}' is not a valid boolean for property '{name}'.")
        return lowered == "true"
    return text


def _comparable(kind: str, value: Any) -> Any:
    if kind in _NUMBER:
        return float(value)
    if kind == "timestamp" and not isinstance(value, datetime):
        return parse_timestamp(value)
    return value


def compile_filter(spec: dict[str, Any], schema: SearchSchema) -> Predicate:
    name = spec["Name"]
    kind = schema.kind(name)
    value = spec.get("Value")
    operator = spec.get("Operator") or ("Equals" if value is not None else "Exists")
    if operator == "Exists":
        return lambda record: bool(values_at(record, name))
    if operator == "NotExists":
        return lambda record: not values_at(record, name)
    if value is None:
        raise validation(f"Filter on '{name}' with operator {operator} requires a Value.")
    if kind in ("structure", "list", "map", "blob"):
        raise validation(f"Operator {operator} is not supported for property '{name}'; "
                         "use Exists or NotExists, or filter on one of its fields.")
    if operator in _ORDERING and kind not in (*_NUMBER, "timestamp"):
        raise validation(f"Operator {operator} is not supported for text property '{name}'.")
    if operator == "Contains":
        if kind != "string":
            raise validation(f"Operator Contains is only supported for text properties; '{name}' is not text.")
        needle = value.lower()
        return lambda record: any(needle in str(v).lower() for v in values_at(record, name))
    if operator == "In":
        wanted = [_typed(kind, name, part.strip()) for part in value.split(",")]
        return lambda record: any(_comparable(kind, v) in wanted for v in values_at(record, name))
    target = _typed(kind, name, value)
    tests: dict[str, Callable[[Any], bool]] = {
        "Equals": lambda v: v == target,
        "NotEquals": lambda v: v != target,
        "GreaterThan": lambda v: v > target,
        "GreaterThanOrEqualTo": lambda v: v >= target,
        "LessThan": lambda v: v < target,
        "LessThanOrEqualTo": lambda v: v <= target,
    }
    test = tests.get(operator)
    if test is None:
        raise validation(f"Unsupported filter operator '{operator}'.")
    if operator == "NotEquals":
        # A resource without the property is not equal to anything.
        return lambda record: all(test(_comparable(kind, v)) for v in values_at(record, name))
    return lambda record: any(test(_comparable(kind, v)) for v in values_at(record, name))


def compile_nested(spec: dict[str, Any], schema: SearchSchema) -> Predicate:
    prop = spec["NestedPropertyName"]
    if schema.kind(prop) != "list":
        raise validation(f"NestedPropertyName '{prop}' is not a list property of {schema.resource}.")
    filters = []
    for f in spec["Filters"]:
        if not f["Name"].startswith(prop + "."):
            raise validation(f"Nested filter name '{f['Name']}' must start with '{prop}.'.")
        filters.append(compile_filter(f, schema))

    def predicate(record: Record) -> bool:
        # Evaluate against a one-element view of the list, so all filters see the same element.
        return any(all(f({**record, prop: [element]}) for f in filters) for element in record.get(prop) or [])
    return predicate


def compile_expression(expr: dict[str, Any] | None, schema: SearchSchema, depth: int = 0) -> Predicate:
    if not expr:
        return lambda record: True
    if depth > 5:
        raise validation("SearchExpression is nested too deeply.")
    parts: list[Predicate] = [compile_filter(f, schema) for f in expr.get("Filters") or []]
    parts += [compile_nested(n, schema) for n in expr.get("NestedFilters") or []]
    parts += [compile_expression(s, schema, depth + 1) for s in expr.get("SubExpressions") or []]
    if not parts:
        raise validation("A SearchExpression needs at least one of Filters, NestedFilters or SubExpressions.")
    if expr.get("Operator", "And") == "Or":
        return lambda record: any(p(record) for p in parts)
    return lambda record: all(p(record) for p in parts)


def sort_records(records: Sequence[Record], schema: SearchSchema, sort_by: str | None,
                 sort_order: str | None) -> list[Record]:
    """Sort by a property (default LastModifiedTime, descending); records without it go last."""
    name = sort_by or ("LastModifiedTime" if "LastModifiedTime" in schema.shape.members else "CreationTime")
    kind = schema.kind(name)
    if kind in ("structure", "list", "map"):
        raise validation(f"Cannot sort by '{name}': it is not a single value.")
    descending = (sort_order or "Descending") == "Descending"
    present: list[tuple[Any, int, Record]] = []
    absent: list[Record] = []
    for index, record in enumerate(records):
        values = values_at(record, name)
        if values:
            present.append((_comparable(kind, values[0]), index, record))
        else:
            absent.append(record)
    present.sort(key=lambda item: item[0], reverse=descending)
    return [r for _, _, r in present] + absent
