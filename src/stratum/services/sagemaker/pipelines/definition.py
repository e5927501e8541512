"""Parsing and validation of SageMaker pipeline definitions (schema version "2020-12-01").

The input is the ``PipelineDefinition`` string that CreatePipeline/UpdatePipeline receive,
normally produced by ``sagemaker.workflow.pipeline.Pipeline.definition()`` (SDK 2.x).
Everything here is pure: no I/O, no clock, so the server and the executor can call it freely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from stratum import jsonfast
from stratum.services.sagemaker.pipelines import step_arguments
from stratum.services.sagemaker.pipelines.dag import CycleError
from stratum.services.sagemaker.pipelines.dag import topological_order as _topological_order
from stratum.services.sagemaker.pipelines.parameters import (
    PARAMETER_TYPES,
    DefinitionError,
    ParameterSpec,
    coerce_value,
    format_parameter_value,
    parameters_for_listing,
    parse_parameters,
    resolve_parameters,
)

__all__ = [
    "DEFAULT_VERSION",
    "EXECUTION_VARIABLES",
    "EXPERIMENT_CONFIG_PROPERTIES",
    "KNOWN_STEP_TYPES",
    "PARAMETER_TYPES",
    "SUPPORTED_VERSIONS",
    "DefinitionError",
    "ParameterSpec",
    "PipelineDefinition",
    "StepSpec",
    "coerce_value",
    "format_parameter_value",
    "parameters_for_listing",
    "parse_definition",
    "resolve_parameters",
]

SUPPORTED_VERSIONS: frozenset[str] = frozenset({"2020-12-01"})
DEFAULT_VERSION = "2020-12-01"

# Every value of sagemaker.workflow.steps.StepTypeEnum in SDK 2.257. NotebookJobStep and the
# @step decorator compile to "Training"; CreateModelStep compiles to "Model".
KNOWN_STEP_TYPES: frozenset[str] = frozenset(
    {
        "Condition",
        "Model",
        "Processing",
        "RegisterModel",
        "Training",
        "Transform",
        "Callback",
        "Tuning",
        "Lambda",
        "QualityCheck",
        "ClarifyCheck",
        "EMR",
        "Fail",
        "AutoML",
        "EndpointConfig",
        "Endpoint",
        "InferenceComponent",
        "Lineage",
    }
)

# sagemaker.workflow.execution_variables.ExecutionVariables. TrainingJobName/ProcessingJobName
# are only meaningful inside the corresponding job, but the SDK emits them anywhere.
EXECUTION_VARIABLES: frozenset[str] = frozenset(
    {
        "StartDateTime",
        "CurrentDateTime",
        "PipelineName",
        "PipelineArn",
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "TrainingJobName",
        "ProcessingJobName",
    }
)

# sagemaker.workflow.pipeline_experiment_config.PipelineExperimentConfigProperties.
EXPERIMENT_CONFIG_PROPERTIES: frozenset[str] = frozenset({"ExperimentName", "TrialName"})

# Step keys that are structure rather than data; everything else may hold Get expressions.
_STEP_STRUCTURE_KEYS = frozenset({"Name", "Type", "DependsOn"})
_BRANCH_KEYS = ("IfSteps", "ElseSteps")


@dataclass
class StepSpec:
    """One step, wherever it appears (top level or inside a Condition branch)."""

    name: str
    type: str
    arguments: Any
    # Only the explicit DependsOn list; data dependencies are in PipelineDefinition.dag.
    depends_on: list[str]
    raw: dict[str, Any]
    # Names of the steps in this Condition's branches (empty for other step types).
    if_steps: list[str] = field(default_factory=list)
    else_steps: list[str] = field(default_factory=list)
    # The Condition step whose branch contains this step, or None for a top-level step.
    parent: str | None = None
    # PropertyFileName values declared by this step (Processing steps), for JsonGet.
    property_files: list[str] = field(default_factory=list)

    @cached_property
    def uses_json_get(self) -> bool:
        """Whether the step's arguments hold a Std:JsonGet (evaluating them reads the object
        store). Asked at every launch of the step; a parsed definition is shared and kept."""
        return _holds_json_get(self.arguments)


def _holds_json_get(node: Any) -> bool:
    if isinstance(node, dict):
        return "Std:JsonGet" in node or any(_holds_json_get(v) for v in node.values())
    if isinstance(node, list):
        return any(_holds_json_get(v) for v in node)
    return False


@dataclass
class PipelineDefinition:
    version: str
    parameters: dict[str, ParameterSpec]
    # All steps, nested ones included, in document order (a Condition precedes its branches).
    steps: dict[str, StepSpec]
    # step -> steps it must wait for: DependsOn + referenced steps + enclosing Condition.
    dag: dict[str, set[str]]
    metadata: dict[str, Any]
    raw: dict[str, Any]
    experiment_config: dict[str, Any] | None = None
    _order: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def edges(self) -> dict[str, set[str]]:
        """Alias of ``dag``."""
        return self.dag

    @property
    def top_level_steps(self) -> list[str]:
        return [name for name, step in self.steps.items() if step.parent is None]

    def topological_order(self) -> list[str]:
        """All step names, dependencies first, ties broken by document order."""
        if self._order is None:
            # Parsed definitions are shared (cached) and never changed: one sort serves every run.
            self._order = tuple(_topological_order(self.dag, list(self.steps)))
        return list(self._order)


# Objects and lists inside one another. A definition the SDK writes nests about a dozen deep (a
# step's Arguments mirror a Create*Job request); Conditions (Not, Or) and Std:Join add a few levels
# each.
MAX_NESTING = 100


def _depth(doc: Any) -> int:
    """How deep objects and lists nest in ``doc``, found without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if level > deepest:
            deepest = level
            if deepest > MAX_NESTING:
                break
        stack.extend((child, level + 1) for child in children)
    return deepest


def parse_definition(text: str | bytes) -> PipelineDefinition:
    """Parse and validate a pipeline definition. Raises DefinitionError on the first problem."""
    if not isinstance(text, str | bytes | bytearray):
        raise DefinitionError("Pipeline definition must be a JSON string")
    try:
        # NaN/Infinity, lone surrogates (no UTF-8 form: the definition could not be stored) and
        # nesting beyond the reader's stack are refused with the syntax errors.
        doc = jsonfast.loads_text(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise DefinitionError(f"Pipeline definition is not valid JSON: {exc}") from None
    if _depth(doc) > MAX_NESTING:
        # Every walk over a definition (here and when an execution evaluates it) recurses per level;
        # refused here so that no start fails on a definition that was accepted.
        raise DefinitionError(f"Pipeline definition is nested deeper than {MAX_NESTING} levels")
    if not isinstance(doc, dict):
        raise DefinitionError("Pipeline definition must be a JSON object")

    # The published definition schema marks Version optional; the SDK always writes it.
    version = doc.get("Version", DEFAULT_VERSION)
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise DefinitionError(
            f"Pipeline definition Version {json.dumps(version)} is not supported; "
            f"supported versions: {', '.join(sorted(SUPPORTED_VERSIONS))}"
        )

    metadata = doc.get("Metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise DefinitionError("Pipeline definition 'Metadata' must be an object")

    experiment_config = doc.get("PipelineExperimentConfig")
    if experiment_config is not None and not isinstance(experiment_config, dict):
        raise DefinitionError("Pipeline definition 'PipelineExperimentConfig' must be an object")

    parameters = parse_parameters(doc.get("Parameters"))

    if "Steps" not in doc:
        raise DefinitionError("Pipeline definition is missing 'Steps'")
    if not isinstance(doc["Steps"], list):
        raise DefinitionError("Pipeline definition 'Steps' must be a list")
    steps: dict[str, StepSpec] = {}
    _collect_steps(doc["Steps"], "Steps", None, steps)
    step_arguments.check_steps(steps.values())

    dag: dict[str, set[str]] = {}
    for step in steps.values():
        deps: set[str] = set()
        for upstream in step.depends_on:
            if upstream not in steps:
                raise DefinitionError(
                    f"Step '{step.name}' DependsOn step '{upstream}', which is not defined "
                    "in the pipeline definition"
                )
            deps.add(upstream)
        where = f"Step '{step.name}'"
        for expr in _get_expressions(_step_data(step), where):
            referenced = _check_reference(expr, where, steps, parameters)
            if referenced is not None:
                deps.add(referenced)
        if step.parent is not None:
            deps.add(step.parent)
        dag[step.name] = deps

    if experiment_config is not None:
        for expr in _get_expressions(experiment_config, "PipelineExperimentConfig"):
            _check_reference(expr, "PipelineExperimentConfig", steps, parameters)

    defn = PipelineDefinition(
        version=version,
        parameters=parameters,
        steps=steps,
        dag=dag,
        metadata=metadata,
        raw=doc,
        experiment_config=experiment_config,
    )
    try:
        defn.topological_order()
    except CycleError as exc:
        raise DefinitionError(f"Pipeline definition has a cycle: {exc}") from None
    return defn


def _collect_steps(items: list[Any], where: str, parent: str | None, steps: dict[str, StepSpec]) -> list[str]:
    """Register ``items`` (and, recursively, Condition branches) into ``steps``; return their names."""
    names: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise DefinitionError(f"Step #{index + 1} in {where} must be an object")
        name = item.get("Name")
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"Step #{index + 1} in {where} is missing 'Name'")
        type_ = item.get("Type")
        if not isinstance(type_, str) or not type_:
            raise DefinitionError(f"Step '{name}' is missing 'Type'")
        if type_ not in KNOWN_STEP_TYPES:
            raise DefinitionError(
                f"Step '{name}' has unsupported Type '{type_}'; "
                f"supported types: {', '.join(sorted(KNOWN_STEP_TYPES))}"
            )
        if name in steps:
            # Same rule, and same scope, as the SDK's StepsCompiler._generate_step_map.
            raise DefinitionError(
                f"Pipeline definition has duplicate step name '{name}'; step names must be unique, "
                "including steps nested in Condition IfSteps/ElseSteps"
            )
        depends_on = item.get("DependsOn", [])
        if depends_on is None:
            depends_on = []
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise DefinitionError(f"Step '{name}' DependsOn must be a list of step names")
        arguments = item.get("Arguments", {})
        property_files = _property_file_names(name, item.get("PropertyFiles"))

        spec = StepSpec(
            name=name,
            type=type_,
            arguments=arguments,
            depends_on=list(depends_on),
            raw=item,
            parent=parent,
            property_files=property_files,
        )
        # Registered before recursing so a branch step reusing its Condition's name is a duplicate.
        steps[name] = spec
        names.append(name)

        if type_ == "Condition":
            if not isinstance(arguments, dict):
                raise DefinitionError(f"Condition step '{name}' Arguments must be an object")
            if not isinstance(arguments.get("Conditions"), list):
                raise DefinitionError(f"Condition step '{name}' Arguments must contain a 'Conditions' list")
            for key in _BRANCH_KEYS:
                branch = arguments.get(key, [])
                if branch is None:
                    branch = []
                if not isinstance(branch, list):
                    raise DefinitionError(f"Condition step '{name}' {key} must be a list")
                branch_names = _collect_steps(branch, f"{key} of step '{name}'", name, steps)
                if key == "IfSteps":
                    spec.if_steps = branch_names
                else:
                    spec.else_steps = branch_names
    return names


def _property_file_names(step: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DefinitionError(f"Step '{step}' PropertyFiles must be a list")
    names: list[str] = []
    for entry in value:
        name = entry.get("PropertyFileName") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"Step '{step}' has a PropertyFiles entry without 'PropertyFileName'")
        names.append(name)
    return names


def _step_data(step: StepSpec) -> dict[str, Any]:
    """The parts of a step that may contain expressions, minus nested branch steps.

    Branch steps are walked as steps of their own, so their references become their edges,
    not the Condition's.
    """
    data = {key: value for key, value in step.raw.items() if key not in _STEP_STRUCTURE_KEYS}
    if step.type == "Condition" and isinstance(step.arguments, dict):
        data["Arguments"] = {k: v for k, v in step.arguments.items() if k not in _BRANCH_KEYS}
    return data


def _get_expressions(value: Any, where: str) -> Iterator[str]:
    """Yield the path of every ``{"Get": ...}`` expression, at any depth.

    This covers Std:Join Values, Std:JsonGet PropertyFile/S3Uri, Condition Left/RightValue,
    Fail ErrorMessage and anything else, since they all nest plain Get objects.
    """
    # Children are pushed reversed so errors are reported in document order.
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            # The schema's GetFunction is exactly {"Get": <string>}; a larger object that merely
            # has a "Get" key (say, an environment variable named Get) is data.
            if len(node) == 1 and "Get" in node:
                expr = node["Get"]
                if not isinstance(expr, str):
                    raise DefinitionError(
                        f"{where} has a Get expression that is not a string: {json.dumps(expr)}"
                    )
                yield expr
            else:
                stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def _check_reference(
    expr: str, where: str, steps: dict[str, StepSpec], parameters: dict[str, ParameterSpec]
) -> str | None:
    """Validate one Get path; return the step it reads from, if any."""
    namespace, _, rest = expr.partition(".")
    if namespace == "Steps":
        target = _match_step(rest, steps)
        if target is None:
            missing = rest.split(".", 1)[0].split("[", 1)[0]
            raise DefinitionError(
                f"{where} references step '{missing}', which is not defined in the pipeline definition"
            )
        path = rest[len(target) :]
        if path.startswith(".PropertyFiles."):
            file_name = path[len(".PropertyFiles.") :]
            if file_name not in steps[target].property_files:
                raise DefinitionError(
                    f"{where} references property file '{file_name}' of step '{target}', "
                    "which that step does not declare in PropertyFiles"
                )
        return target
    if namespace == "Parameters":
        if rest not in parameters:
            raise DefinitionError(
                f"{where} references parameter '{rest}', which is not defined in the pipeline definition"
            )
        return None
    if namespace == "Execution":
        if rest not in EXECUTION_VARIABLES:
            raise DefinitionError(
                f"{where} references unknown execution variable '{rest}'; "
                f"supported: {', '.join(sorted(EXECUTION_VARIABLES))}"
            )
        return None
    if namespace == "PipelineExperimentConfig":
        if rest not in EXPERIMENT_CONFIG_PROPERTIES:
            raise DefinitionError(
                f"{where} references unknown PipelineExperimentConfig property '{rest}'; "
                f"supported: {', '.join(sorted(EXPERIMENT_CONFIG_PROPERTIES))}"
            )
        return None
    raise DefinitionError(
        f"{where} has an unsupported Get expression '{expr}'; expected Steps.<step>..., "
        "Parameters.<name>, Execution.<variable> or PipelineExperimentConfig.<property>"
    )


def _match_step(rest: str, steps: dict[str, StepSpec]) -> str | None:
    """Find the step a ``Steps.`` path starts with.

    Matching whole known names (longest first) instead of splitting on '.' keeps this correct
    for hand-written names the SDK would not produce, e.g. ones containing dots.
    """
    best: str | None = None
    for name in steps:
        if (rest == name or rest.startswith(name + ".") or rest.startswith(name + "[")) and (
            best is None or len(name) > len(best)
        ):
            best = name
    return best
