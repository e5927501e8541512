"""Step caching (CacheConfig {Enabled, ExpireAfter}).

A step with caching enabled reuses the newest successful run, within ExpireAfter, of a step of the
same type with the same resolved cache key attributes (CACHE_KEY_ATTRIBUTES) in the same pipeline
(account and region included).
The signature hashes what determines the step's work, never its name, so renaming a step keeps
its cache, as in SageMaker.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from stratum.engine.tables import sagemaker_step_cache as cache_t

# Steps whose work is not cacheable: they decide, they do not produce.
UNCACHEABLE_TYPES = frozenset({"Condition", "Fail"})

_DURATION = re.compile(
    r"P?(?:(?P<years>\d+(?:\.\d+)?)Y)?(?:(?P<months>\d+(?:\.\d+)?)M)?(?:(?P<weeks>\d+(?:\.\d+)?)W)?"
    r"(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration ("PT1H", "P30D", "P4DT12H", "P1W"); the SDK also documents "T12H".

    Years and months have no fixed length; they count as 365 and 30 days.
    """
    if not isinstance(text, str):
        raise ValueError(f"'{text}' is not an ISO-8601 duration")
    value = text.strip()
    m = _DURATION.fullmatch(value)
    if m is None or not any(m.groupdict().values()) or value.upper().endswith("T"):
        raise ValueError(f"'{text}' is not an ISO-8601 duration (e.g. PT1H, P30D)")
    if not value.upper().startswith(("P", "T")):
        raise ValueError(f"'{text}' is not an ISO-8601 duration (e.g. PT1H, P30D)")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    return timedelta(days=parts["years"] * 365 + parts["months"] * 30 + parts["weeks"] * 7 + parts["days"],
                     hours=parts["hours"], minutes=parts["minutes"], seconds=parts["seconds"])


@dataclass(frozen=True)
class CachePolicy:
    expire_after: timedelta | None  # None: no limit


def cache_policy(step: dict[str, Any]) -> CachePolicy | None:
    """The step's CacheConfig, or None when caching is off. Raises ValueError on a bad ExpireAfter."""
    if step.get("Type") in UNCACHEABLE_TYPES:
        return None
    config = step.get("CacheConfig")
    if not isinstance(config, dict) or config.get("Enabled") is not True:
        return None
    expire = config.get("ExpireAfter")
    return CachePolicy(parse_duration(expire) if expire else None)


# What besides Arguments determines a step's work (the rest is structure, display or policy).
_SIGNATURE_KEYS = ("FunctionArn", "OutputParameters", "SqsQueueUrl", "PropertyFiles")

# The attributes of a job step's Arguments that decide a cache hit, as SageMaker documents them
# ("Default cache key attributes by pipeline step type"). Output locations, resources, stopping
# conditions and roles are not among them: the SDK puts the execution id into default output
# paths (ProcessingOutputConfig), which would otherwise make every execution a cache miss; a
# hit reuses the earlier run's outputs anyway. Step types not listed hash all their Arguments.
CACHE_KEY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": ("AlgorithmSpecification", "CheckpointConfig", "DebugHookConfig", "DebugRuleConfigurations",
                 "Environment", "HyperParameters", "InputDataConfig"),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions"),
    "Transform": ("DataProcessing", "Environment", "ModelName", "TransformInput"),
}
# Of a tuning step's training job definitions, only these count.
_TUNING_DEFINITION_KEYS = ("AlgorithmSpecification", "HyperParameterRanges", "InputDataConfig",
                           "StaticHyperParameters", "TuningObjective")


def cache_key_arguments(step_type: str, arguments: Any) -> Any:
    """The part of a step's resolved Arguments its cache signature covers."""
    keys = CACHE_KEY_ATTRIBUTES.get(step_type)
    if keys is None or not isinstance(arguments, dict):
        return arguments
    selected = {k: arguments[k] for k in keys if k in arguments}
    if step_type == "Tuning":
        def definition(d: Any) -> Any:
            return {k: d[k] for k in _TUNING_DEFINITION_KEYS if k in d} if isinstance(d, dict) else d

        if "TrainingJobDefinition" in selected:
            selected["TrainingJobDefinition"] = definition(selected["TrainingJobDefinition"])
        if isinstance(selected.get("TrainingJobDefinitions"), list):
            selected["TrainingJobDefinitions"] = [definition(d) for d in selected["TrainingJobDefinitions"]]
    return selected


def signature(step_type: str, arguments: Any, step: dict[str, Any], resolved_extra: dict[str, Any] | None = None
              ) -> str:
    body = {"Type": step_type, "Arguments": cache_key_arguments(step_type, arguments),
            **{k: step[k] for k in _SIGNATURE_KEYS if k in step}, **(resolved_extra or {})}
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class CacheHit:
    execution_arn: str
    execution_id: str
    outputs: Any
    metadata: Any


_LOOKUP = (select(cache_t.c.execution_arn, cache_t.c.execution_id, cache_t.c.outputs, cache_t.c.step_metadata)
           .where((cache_t.c.account_id == bindparam("account")) & (cache_t.c.region == bindparam("region"))
                  & (cache_t.c.pipeline_id == bindparam("pipeline_id")) & (cache_t.c.signature == bindparam("sig"))
                  & (cache_t.c.ended_at >= bindparam("since")) & (cache_t.c.execution_id != bindparam("own")))
           .order_by(cache_t.c.ended_at.desc()).limit(1))
_RECORD = insert(cache_t)
_FORGET = delete(cache_t).where(
    (cache_t.c.account_id == bindparam("account_id")) & (cache_t.c.region == bindparam("region"))
    & (cache_t.c.pipeline_id == bindparam("pipeline_id")) & (cache_t.c.signature == bindparam("signature"))
    & (cache_t.c.execution_id == bindparam("execution_id")) & (cache_t.c.step_name == bindparam("step_name")))


def lookup(conn: Connection, *, account: str, region: str, pipeline_id: str, sig: str, policy: CachePolicy,
           now: datetime, own_execution: str) -> CacheHit | None:
    since = now - policy.expire_after if policy.expire_after is not None else datetime(1970, 1, 1, tzinfo=now.tzinfo)
    row = conn.execute(_LOOKUP, {"account": account, "region": region, "pipeline_id": pipeline_id, "sig": sig,
                                 "since": since, "own": own_execution}).first()
    if row is None:
        return None
    return CacheHit(row.execution_arn, row.execution_id, row.outputs, row.step_metadata)


def record(conn: Connection, *, account: str, region: str, pipeline_id: str, sig: str, execution_id: str,
           execution_arn: str, step_name: str, ended_at: datetime, outputs: Any, metadata: Any) -> None:
    key = {"account_id": account, "region": region, "pipeline_id": pipeline_id, "signature": sig,
           "execution_id": execution_id, "step_name": step_name}
    # A step re-run in the same execution (RetryPipelineExecution) replaces its earlier entry.
    conn.execute(_FORGET, key)
    conn.execute(_RECORD, {**key, "execution_arn": execution_arn, "ended_at": ended_at, "outputs": outputs,
                           "step_metadata": metadata})
