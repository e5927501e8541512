"""Evaluation of pipeline expressions and conditions (definition schema 2020-12-01).

Pure: everything an expression may read (parameters, execution variables, finished steps'
properties, S3 objects for Std:JsonGet) comes in through ``EvalContext``, so the engine, the tests
and the benchmark evaluate exactly the same way.

Expressions are JSON objects with exactly one key:
- ``{"Get": "Parameters.X" | "Execution.X" | "PipelineExperimentConfig.X" | "Steps.S.<path>"}``
- ``{"Std:Join": {"On": sep, "Values": [...]}}``
- ``{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.S.PropertyFiles.F"} | "S3Uri": ..., "Path": p}}``
Everything else is data and is copied through with its expressions resolved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class ExpressionError(Exception):
    """An expression cannot be evaluated; the message becomes the step's FailureReason."""


@dataclass
class EvalContext:
    parameters: Mapping[str, Any]
    # Execution variables without the "Execution." prefix (PipelineName, StartDateTime, ...).
    execution: Mapping[str, Any]
    experiment: Mapping[str, Any] = field(default_factory=dict)
    # Properties of a finished step, or None if the step has not (successfully) run.
    step_properties: Callable[[str], Mapping[str, Any] | None] = lambda _name: None
    # All step names of the definition: paths are matched against whole names (names may hold dots).
    step_names: Collection[str] = ()
    # (step, property file name) -> (OutputName, FilePath) as declared in the step's PropertyFiles.
    property_files: Callable[[str, str], tuple[str, str] | None] = lambda _s, _f: None
    # Reads s3://bucket/key; raises ExpressionError with a readable reason when it cannot.
    read_s3: Callable[[str, str], bytes] | None = None


# ------------------------------------------------------------------------------------------- paths
_SEGMENT = re.compile(r"\.([^.\[\]]+)|\[\s*(-?\d+|'[^']*'|\"[^\"]*\")\s*\]")


def parse_path(path: str) -> list[str | int]:
    """Split ``.A.B['x'][0]`` (or ``A.B`` without the leading dot) into keys and indexes."""
    if path and not path.startswith((".", "[")):
        path = "." + path
    keys: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _SEGMENT.match(path, pos)
        if m is None:
            raise ExpressionError(f"Invalid property path '{path.lstrip('.')}'")
        if m.group(1) is not None:
            keys.append(m.group(1))
        else:
            token = m.group(2)
            keys.append(token[1:-1] if token[0] in "'\"" else int(token))
        pos = m.end()
    return keys


def _named_element(items: list[Any], key: str) -> Any:
    """``Outputs['train']`` on a Describe* list: the element whose *Name field is ``key``.

    The service exposes lists such as ProcessingOutputConfig.Outputs (OutputName),
    FinalMetricDataList (MetricName) or ProcessingInputs (InputName) as maps by name.
    """
    for item in items:
        if isinstance(item, Mapping):
            for field_name, value in item.items():
                if field_name.endswith("Name") and value == key:
                    return item
    raise KeyError(key)


def get_path(value: Any, keys: list[str | int]) -> Any:
    """Follow parsed ``keys`` into ``value``; KeyError/IndexError/TypeError when missing."""
    for key in keys:
        if isinstance(value, Mapping):
            if isinstance(key, int) and key not in value and str(key) in value:
                key = str(key)
            value = value[key]
        elif isinstance(value, list):
            value = value[key] if isinstance(key, int) else _named_element(value, key)
        else:
            raise TypeError(f"cannot index {type(value).__name__}")
    return value


def match_step(rest: str, step_names: Collection[str]) -> str | None:
    """The step a ``Steps.`` path starts with: the longest whole name that prefixes it.

    Names are usually plain, so the head of the path is the step; only names holding a dot or a
    bracket (hand-written definitions) need the longest-prefix search.
    """
    names = step_names if isinstance(step_names, frozenset) else frozenset(step_names)
    best: str | None = None
    for name in _dotted(names):
        if (rest == name or rest.startswith((name + ".", name + "["))) and (best is None or len(name) > len(best)):
            best = name
    head = rest.split(".", 1)[0].split("[", 1)[0]
    if head in names and (best is None or len(head) >= len(best)):
        return head
    return best


@lru_cache(maxsize=256)
def _dotted(names: frozenset[str]) -> tuple[str, ...]:
    return tuple(n for n in names if "." in n or "[" in n)


# ---------------------------------------------------------------------------------------- rendering
def to_text(value: Any) -> str:
    """How a value reads inside Std:Join and string contexts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


def _describe(value: Any) -> str:
    return json.dumps(value, default=str) if not isinstance(value, str) else f"'{value}'"


# --------------------------------------------------------------------------------------- evaluation
def is_expression(node: Any) -> bool:
    return isinstance(node, dict) and len(node) == 1 and next(iter(node)) in ("Get", "Std:Join", "Std:JsonGet")


def resolve(node: Any, ctx: EvalContext) -> Any:
    """A copy of ``node`` with every expression replaced by its value."""
    if isinstance(node, dict):
        if len(node) == 1:
            key = next(iter(node))
            if key == "Get" and isinstance(node[key], str):
                return get(node[key], ctx)
            if key == "Std:Join":
                return _join(node[key], ctx)
            if key == "Std:JsonGet":
                return _json_get(node[key], ctx)
        return {k: resolve(v, ctx) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, ctx) for v in node]
    return node


def get(expr: str, ctx: EvalContext) -> Any:
    namespace, _, rest = expr.partition(".")
    if namespace == "Parameters":
        if rest not in ctx.parameters:
            raise ExpressionError(f"Parameter '{rest}' is undefined.")
        return ctx.parameters[rest]
    if namespace == "Execution":
        value = ctx.execution.get(rest)
        if value is None:
            raise ExpressionError(f"Execution variable '{rest}' is not available in this step.")
        return value
    if namespace == "PipelineExperimentConfig":
        value = ctx.experiment.get(rest)
        if value is None:
            raise ExpressionError(f"PipelineExperimentConfig.{rest} is undefined for this execution.")
        return value
    if namespace == "Steps":
        step = match_step(rest, ctx.step_names)
        if step is None:
            raise ExpressionError(f"{expr} references a step that is not defined.")
        path = rest[len(step):]
        if path.startswith(".PropertyFiles."):
            raise ExpressionError(f"{expr} is a property file; read it with Std:JsonGet.")
        props = ctx.step_properties(step)
        if props is None:
            raise ExpressionError(f"{expr} is undefined: step '{step}' has no properties in this execution.")
        try:
            return get_path(props, parse_path(path))
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(f"{expr} is undefined: step '{step}' has no property "
                                  f"'{path.lstrip('.')}'.") from None
    raise ExpressionError(f"Unsupported expression {{'Get': '{expr}'}}.")


def _join(spec: Any, ctx: EvalContext) -> str:
    if not isinstance(spec, dict) or not isinstance(spec.get("Values"), list):
        raise ExpressionError("Std:Join needs a 'Values' list.")
    on = spec.get("On", "")
    if not isinstance(on, str):
        raise ExpressionError("Std:Join 'On' must be a string.")
    return on.join(to_text(resolve(v, ctx)) for v in spec["Values"])


def s3_location(uri: str) -> tuple[str, str]:
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ExpressionError(f"'{uri}' is not an S3 URI (s3://bucket/key).")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise ExpressionError(f"'{uri}' is not an S3 URI of an object (s3://bucket/key).")
    return bucket, key


def _join_uri(prefix: str, path: str) -> str:
    return prefix.rstrip("/") + "/" + path.lstrip("/")


def _property_file_uri(ref: Any, ctx: EvalContext) -> str:
    if not (isinstance(ref, dict) and len(ref) == 1 and isinstance(ref.get("Get"), str)):
        raise ExpressionError("Std:JsonGet 'PropertyFile' must be {'Get': 'Steps.<step>.PropertyFiles.<name>'}.")
    expr = ref["Get"]
    namespace, _, rest = expr.partition(".")
    step = match_step(rest, ctx.step_names) if namespace == "Steps" else None
    if step is None or not rest[len(step):].startswith(".PropertyFiles."):
        raise ExpressionError(f"Std:JsonGet PropertyFile '{expr}' is not Steps.<step>.PropertyFiles.<name>.")
    file_name = rest[len(step) + len(".PropertyFiles."):]
    declared = ctx.property_files(step, file_name)
    if declared is None:
        raise ExpressionError(f"Step '{step}' declares no property file '{file_name}'.")
    output_name, file_path = declared
    props = ctx.step_properties(step)
    if props is None:
        raise ExpressionError(f"Property file '{file_name}' of step '{step}' is undefined: the step has not run.")
    try:
        prefix = get_path(props, ["ProcessingOutputConfig", "Outputs", output_name, "S3Output", "S3Uri"])
    except (KeyError, IndexError, TypeError):
        raise ExpressionError(f"Step '{step}' has no processing output '{output_name}' holding property file "
                              f"'{file_name}'.") from None
    return _join_uri(str(prefix), file_path)


def _json_get(spec: Any, ctx: EvalContext) -> Any:
    if not isinstance(spec, dict) or not isinstance(spec.get("Path"), str):
        raise ExpressionError("Std:JsonGet needs a 'Path' string.")
    if "PropertyFile" in spec:
        uri = _property_file_uri(spec["PropertyFile"], ctx)
    elif "S3Uri" in spec:
        uri = resolve(spec["S3Uri"], ctx)
    else:
        raise ExpressionError("Std:JsonGet needs 'PropertyFile' or 'S3Uri'.")
    bucket, key = s3_location(uri)
    if ctx.read_s3 is None:
        raise ExpressionError(f"Cannot read {uri}: no S3 store is available.")
    data = ctx.read_s3(bucket, key)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ExpressionError(f"Contents of file {uri} are not in valid JSON format.") from None
    return json_path(doc, spec["Path"], uri)


def json_path(doc: Any, path: str, where: str = "the document") -> Any:
    """Std:JsonGet's Path: dotted keys with [n] indexes, an optional leading '$.'."""
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    try:
        return get_path(doc, parse_path(text)) if text else doc
    except ExpressionError:
        raise ExpressionError(f"Invalid json path '{path}'.") from None
    except (KeyError, IndexError, TypeError):
        raise ExpressionError(f"Json path '{path}' does not exist in {where}.") from None


# --------------------------------------------------------------------------------------- conditions
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "GreaterThan": lambda a, b: bool(a > b),
    "GreaterThanOrEqualTo": lambda a, b: bool(a >= b),
    "LessThan": lambda a, b: bool(a < b),
    "LessThanOrEqualTo": lambda a, b: bool(a <= b),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _comparable(left: Any, right: Any, kind: str) -> tuple[Any, Any]:
    """Bring two operands to one type the way the service compares them.

    Numbers compare as numbers (Integer vs Float included); a number against a numeric string
    (a Lambda/Callback output or a JsonGet string) compares numerically; otherwise both must
    have the same type.
    """
    if _is_number(left) and _is_number(right):
        return left, right
    if _is_number(left) and isinstance(right, str):
        return left, _number(right, left, right, kind)
    if isinstance(left, str) and _is_number(right):
        return _number(left, left, right, kind), right
    if isinstance(left, bool) and isinstance(right, str) and right.lower() in ("true", "false"):
        return left, right.lower() == "true"
    if isinstance(left, str) and isinstance(right, bool) and left.lower() in ("true", "false"):
        return left.lower() == "true", right
    if type(left) is not type(right):
        raise ExpressionError(f"Condition {kind}: LeftValue {_describe(left)} ({_type_name(left)}) and RightValue "
                              f"{_describe(right)} ({_type_name(right)}) are not of the same type.")
    if kind != "Equals" and not isinstance(left, str | int | float):
        raise ExpressionError(f"Condition {kind} is not supported between {_type_name(left)} values.")
    return left, right


def _number(text: str, left: Any, right: Any, kind: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ExpressionError(f"Condition {kind}: LeftValue {_describe(left)} ({_type_name(left)}) and RightValue "
                              f"{_describe(right)} ({_type_name(right)}) are not of the same type.") from None


def _type_name(value: Any) -> str:
    return {bool: "Boolean", int: "Integer", float: "Float", str: "String"}.get(type(value), type(value).__name__)


def evaluate_condition(condition: Any, ctx: EvalContext) -> bool:
    if not isinstance(condition, dict) or not isinstance(condition.get("Type"), str):
        raise ExpressionError("Each condition needs a 'Type'.")
    kind = condition["Type"]
    if kind in _COMPARISONS:
        if "LeftValue" not in condition or "RightValue" not in condition:
            raise ExpressionError(f"Condition {kind} needs LeftValue and RightValue.")
        left, right = _comparable(resolve(condition["LeftValue"], ctx), resolve(condition["RightValue"], ctx), kind)
        return _COMPARISONS[kind](left, right)
    if kind == "In":
        query = resolve(condition.get("QueryValue"), ctx)
        values = condition.get("Values")
        if not isinstance(values, list):
            raise ExpressionError("Condition In needs a 'Values' list.")
        for candidate in values:
            try:
                left, right = _comparable(query, resolve(candidate, ctx), "In")
            except ExpressionError:
                continue
            if left == right:
                return True
        return False
    if kind == "Not":
        return not evaluate_condition(condition.get("Condition"), ctx)
    if kind == "Or":
        nested = condition.get("Conditions")
        if not isinstance(nested, list):
            raise ExpressionError("Condition Or needs a 'Conditions' list.")
        return any(evaluate_condition(c, ctx) for c in nested)
    raise ExpressionError(f"Condition type '{kind}' is not supported.")


def evaluate_conditions(conditions: Any, ctx: EvalContext) -> bool:
    """A Condition step's outcome: its Conditions list is a conjunction."""
    if not isinstance(conditions, list):
        raise ExpressionError("Condition step Arguments must contain a 'Conditions' list.")
    return all(evaluate_condition(c, ctx) for c in conditions)
