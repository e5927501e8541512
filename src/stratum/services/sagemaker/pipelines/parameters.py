"""Pipeline parameters: declaration parsing, execution-time resolution and listing.

``DefinitionError`` lives here (not in ``definition``) because this is the bottom
layer of the package: ``definition`` imports this module, never the reverse at
runtime. Callers should import everything from ``stratum.services.sagemaker.pipelines.definition``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stratum.services.sagemaker.pipelines.definition import PipelineDefinition


class DefinitionError(ValueError):
    """A pipeline definition or execution parameter list is invalid.

    The message is user-facing: the server returns it verbatim as a ValidationException.
    """


# Order matters only for error messages; it mirrors sagemaker.workflow.parameters.ParameterTypeEnum.
PARAMETER_TYPES: tuple[str, ...] = ("String", "Integer", "Boolean", "Float")

# StartPipelineExecution's Parameter.Value shape is String1024 in the service model.
MAX_PARAMETER_VALUE_LENGTH = 1024

# ASCII-only on purpose: Python's int()/float() accept Unicode digits, underscores and
# surrounding whitespace, none of which the SageMaker service accepts.
_INTEGER_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass
class ParameterSpec:
    """One entry of the definition's ``Parameters`` list, with its default already typed."""

    name: str
    type: str
    default: Any | None
    enum_values: list[str] | None
    description: str | None = None

    @property
    def required(self) -> bool:
        """True when StartPipelineExecution must supply a value."""
        return self.default is None


def _json_repr(value: Any) -> str:
    return json.dumps(value)


def _typed_default(name: str, type_: str, value: Any) -> Any:
    """Check a JSON ``DefaultValue`` against the declared type and return the Python value."""
    # bool is a subclass of int, so it must be excluded explicitly for numeric types.
    if type_ == "String" and isinstance(value, str):
        return value
    if type_ == "Boolean" and isinstance(value, bool):
        return value
    if type_ == "Integer" and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        # JSON Schema treats 3.0 as an integer, so a hand-written 3.0 is accepted.
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if type_ == "Float" and not isinstance(value, bool) and isinstance(value, int | float):
        # The SDK's own type check lets ParameterFloat(default_value=0) through, emitting an int.
        return float(value)
    raise DefinitionError(
        f"Parameter '{name}' DefaultValue {_json_repr(value)} does not match its Type '{type_}'"
    )


def coerce_value(spec: ParameterSpec, text: str) -> Any:
    """Convert a StartPipelineExecution string value to the parameter's declared type."""
    if spec.type == "String":
        return text
    if spec.type == "Integer":
        if _INTEGER_RE.fullmatch(text):
            return int(text)
        raise DefinitionError(f"Value '{text}' for parameter '{spec.name}' is not a valid Integer")
    if spec.type == "Float":
        if _FLOAT_RE.fullmatch(text):
            number = float(text)
            # "1e400" matches the grammar but overflows; inf cannot be serialised back to JSON.
            if math.isfinite(number):
                return number
        raise DefinitionError(f"Value '{text}' for parameter '{spec.name}' is not a valid Float")
    if spec.type == "Boolean":
        # The SDK sends str(True) == "True", hand-written clients send "true": accept both.
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        raise DefinitionError(
            f"Value '{text}' for parameter '{spec.name}' is not a valid Boolean (expected true or false)"
        )
    # parse_parameters rejects unknown types, so only a hand-built ParameterSpec gets here.
    raise DefinitionError(f"Parameter '{spec.name}' has unsupported Type '{spec.type}'")


def _typed_enum_values(spec: ParameterSpec) -> list[Any] | None:
    if spec.enum_values is None:
        return None
    typed: list[Any] = []
    for raw in spec.enum_values:
        try:
            typed.append(coerce_value(spec, raw))
        except DefinitionError:
            raise DefinitionError(
                f"Parameter '{spec.name}' EnumValues entry '{raw}' is not a valid {spec.type}"
            ) from None
    return typed


def _enum_text(spec: ParameterSpec) -> str:
    return ", ".join(spec.enum_values or [])


def parse_parameters(items: Any) -> dict[str, ParameterSpec]:
    """Parse the definition's ``Parameters`` list, preserving declaration order."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise DefinitionError("Pipeline definition 'Parameters' must be a list")
    specs: dict[str, ParameterSpec] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise DefinitionError(f"Pipeline definition parameter #{index + 1} must be an object")
        name = item.get("Name")
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"Pipeline definition parameter #{index + 1} is missing 'Name'")
        if name in specs:
            raise DefinitionError(f"Pipeline definition has duplicate parameter name '{name}'")
        # The published definition schema only requires Type for non-String parameters, and the
        # SDK's ParameterTypeEnum defaults to String.
        type_ = item.get("Type", "String")
        if type_ not in PARAMETER_TYPES:
            raise DefinitionError(
                f"Parameter '{name}' has unsupported Type {_json_repr(type_)}; "
                f"expected one of {', '.join(PARAMETER_TYPES)}"
            )
        raw_default = item.get("DefaultValue")
        default = None if raw_default is None else _typed_default(name, type_, raw_default)
        enum_values = item.get("EnumValues")
        if enum_values is not None and (
            not isinstance(enum_values, list)
            or not enum_values
            or not all(isinstance(v, str) for v in enum_values)
        ):
            raise DefinitionError(f"Parameter '{name}' EnumValues must be a non-empty list of strings")
        description = item.get("Description")
        spec = ParameterSpec(
            name=name,
            type=type_,
            default=default,
            enum_values=list(enum_values) if enum_values is not None else None,
            description=description if isinstance(description, str) else None,
        )
        allowed = _typed_enum_values(spec)
        if allowed is not None and default is not None and default not in allowed:
            raise DefinitionError(
                f"Parameter '{name}' DefaultValue {_json_repr(raw_default)} is not one of its "
                f"EnumValues: {_enum_text(spec)}"
            )
        specs[name] = spec
    return specs


def resolve_parameters(defn: PipelineDefinition, supplied: list[dict] | None) -> dict[str, Any]:
    """Merge StartPipelineExecution ``PipelineParameters`` with the definition's defaults.

    Returns every declared parameter, in declaration order, as a typed Python value.
    """
    if supplied is None:
        supplied = []
    if not isinstance(supplied, list):
        raise DefinitionError("PipelineParameters must be a list")
    given: dict[str, str] = {}
    for entry in supplied:
        if (
            not isinstance(entry, Mapping)
            or not isinstance(entry.get("Name"), str)
            or not isinstance(entry.get("Value"), str)
        ):
            raise DefinitionError("Each entry of PipelineParameters needs a string 'Name' and 'Value'")
        name, value = entry["Name"], entry["Value"]
        if name not in defn.parameters:
            raise DefinitionError(f"Parameter '{name}' is not defined in the pipeline definition")
        if name in given:
            raise DefinitionError(f"Parameter '{name}' is supplied more than once")
        if value == "":
            # Wording of the real service's schema validation error for an empty value.
            raise DefinitionError(
                f"Parameter '{name}' value \"\" is too short (length: 0, required minimum: 1)"
            )
        if len(value) > MAX_PARAMETER_VALUE_LENGTH:
            raise DefinitionError(
                f"Parameter '{name}' value is too long (length: {len(value)}, "
                f"maximum: {MAX_PARAMETER_VALUE_LENGTH})"
            )
        given[name] = value

    resolved: dict[str, Any] = {}
    for name, spec in defn.parameters.items():
        if name in given:
            value = coerce_value(spec, given[name])
            allowed = _typed_enum_values(spec)
            if allowed is not None and value not in allowed:
                raise DefinitionError(
                    f"Value '{given[name]}' for parameter '{name}' is not one of its "
                    f"EnumValues: {_enum_text(spec)}"
                )
            resolved[name] = value
        elif spec.default is not None:
            resolved[name] = spec.default
        else:
            raise DefinitionError(
                f"Parameter '{name}' has no default value, so a value must be supplied in PipelineParameters"
            )
    return resolved


def format_parameter_value(value: Any) -> str:
    """Render a typed value the way ListPipelineParametersForExecution reports it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    # str(float) is what the SDK's format_start_parameters sends (0.5 -> "0.5", 1e-05 -> "1e-05").
    return str(value)


def parameters_for_listing(defn: PipelineDefinition, resolved: Mapping[str, Any]) -> list[dict[str, str]]:
    """ListPipelineParametersForExecution ``PipelineParameters`` in declaration order."""
    return [
        {"Name": name, "Value": format_parameter_value(resolved[name])}
        for name in defn.parameters
        if name in resolved
    ]
