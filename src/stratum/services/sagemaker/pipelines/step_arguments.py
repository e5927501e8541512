"""A pipeline step's Arguments checked against the request they stand for, at Create/UpdatePipeline.

A Training step's Arguments are a CreateTrainingJob request without the job name, a Processing
step's a CreateProcessingJob request, and so on (the SDK writes them from the same request
builders). Checking them against botocore's input shape when the definition is stored turns a
misspelled key or a wrong type into a ValidationException naming the step and the path, instead
of a step that fails at run time.

Pipeline expressions (``{"Get": ...}``, ``{"Std:Join": ...}``, ``{"Std:JsonGet": ...}``) stand for
values known only at run time: they are accepted wherever a value may be. Missing members are
not errors here: the engine fills in the job or model name and the pipeline's role, and the
request is validated in full when the step runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.model import Shape

from stratum.protocol.service_models import service_model
from stratum.services.sagemaker.pipelines.parameters import DefinitionError

# Step type -> the request its Arguments are.
OPERATIONS = {
    "Training": "CreateTrainingJob",
    "Processing": "CreateProcessingJob",
    "Transform": "CreateTransformJob",
    "Tuning": "CreateHyperParameterTuningJob",
    "Model": "CreateModel",
    "RegisterModel": "CreateModelPackage",
}
# The keys a step of these types has besides Arguments (sagemaker.workflow.steps.Step.to_request).
STEP_KEYS = ("Name", "Type", "Arguments", "DependsOn", "DisplayName", "Description", "CacheConfig",
             "RetryPolicies", "PropertyFiles")
EXPRESSION_KEYS = frozenset({"Get", "Std:Join", "Std:JsonGet"})
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "long": (int,), "float": (int, float), "double": (int, float),
    "boolean": (bool,), "timestamp": (str, int, float), "blob": (str,), "structure": (dict,), "map": (dict,),
    "list": (list,),
}
_TYPE_WORDS = {"string": "string", "integer": "integer", "long": "integer", "float": "number",
               "double": "number", "boolean": "boolean", "timestamp": "timestamp", "blob": "base64 string",
               "structure": "object", "map": "object", "list": "list"}
MAX_ERRORS = 10


def is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSION_KEYS


def check_steps(steps: Iterable[Any]) -> None:
    """Raise DefinitionError for the first step (in definition order) whose Arguments do not fit."""
    for step in steps:
        operation = OPERATIONS.get(step.type)
        if operation is None:
            continue
        errors = step_errors(step.name, step.type, step.raw, operation)
        if errors:
            n = len(errors)
            raise DefinitionError(
                f"{n} validation error{'s' if n > 1 else ''} detected in the Arguments of step '{step.name}' "
                f"(Type {step.type}, a {operation} request): " + "; ".join(errors[:MAX_ERRORS]))


def step_errors(name: str, step_type: str, raw: dict[str, Any], operation: str) -> list[str]:
    errors = [f"Unknown key \"{key}\" in step '{name}', must be one of: {', '.join(STEP_KEYS)}"
              for key in raw if key not in STEP_KEYS]
    arguments = raw.get("Arguments")
    if arguments is None or is_expression(arguments):
        return errors
    shape = service_model("sagemaker").operation_model(operation).input_shape
    _check(shape, arguments, "Arguments", errors)
    return errors


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    if value is None or is_expression(value) or shape.metadata.get("document"):
        return
    kind = shape.type_name
    expected = _JSON_TYPES.get(kind)
    if expected is not None and (not isinstance(value, expected)
                                 or (isinstance(value, bool) and kind not in ("boolean",))):
        errors.append(f"Value {_show(value)} at '{path}' is not a valid {_TYPE_WORDS[kind]}")
        return
    if kind == "structure":
        members = shape.members
        for key, item in value.items():
            member_shape = members.get(key)
            if member_shape is None:
                errors.append(f"Unknown parameter \"{key}\" in '{path}', must be one of: {', '.join(members)}")
                continue
            _check(member_shape, item, f"{path}.{key}", errors)
    elif kind == "list":
        for index, item in enumerate(value):
            _check(shape.member, item, f"{path}[{index}]", errors)
    elif kind == "map":
        for key, item in value.items():
            _check(shape.value, item, f"{path}.{key}", errors)
    elif kind == "string":
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            errors.append(f"Value {_show(value)} at '{path}' must be one of: {', '.join(enum)}")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, dict | list):
        return "an object" if isinstance(value, dict) else "a list"
    return "true" if value is True else "false" if value is False else str(value)
