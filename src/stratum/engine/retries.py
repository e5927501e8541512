"""RetryPolicies: which failures are retried, how often and after how long.

A policy is {"ExceptionType": [...], "IntervalSeconds", "BackoffRate", "MaxAttempts" | "ExpireAfterMin"}.
A failed attempt is retried by the first policy listing its error type (StepResult.error_type);
MaxAttempts counts retries under that policy, the n-th retry waits IntervalSeconds * BackoffRate^(n-1),
and ExpireAfterMin bounds the time since the step's first attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STEP_EXCEPTION_TYPES = frozenset({"Step.SERVICE_FAULT", "Step.THROTTLING"})
JOB_EXCEPTION_TYPES = frozenset({"SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR",
                                 "SageMaker.RESOURCE_LIMIT"})
# The SDK caps MaxAttempts at 20 and ExpireAfterMin at 14400 (sagemaker.workflow.retry).
MAX_ATTEMPTS_CAP = 20
MAX_EXPIRE_AFTER_MIN = 14400


@dataclass(frozen=True)
class RetryPolicy:
    exception_types: frozenset[str]
    interval_seconds: float
    backoff_rate: float
    max_attempts: int | None
    expire_after_min: float | None


class RetryPolicyError(ValueError):
    """A RetryPolicies entry is malformed; the message becomes the step's FailureReason."""


def _number(entry: dict[str, Any], key: str, default: float | None) -> float | None:
    value = entry.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RetryPolicyError(f"RetryPolicies {key} must be a non-negative number, got {value!r}.")
    return float(value)


def parse_policies(step: dict[str, Any]) -> list[RetryPolicy]:
    raw = step.get("RetryPolicies")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RetryPolicyError("RetryPolicies must be a list.")
    policies: list[RetryPolicy] = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise RetryPolicyError("Each RetryPolicies entry must be an object.")
        types = entry.get("ExceptionType")
        if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
            raise RetryPolicyError("Each RetryPolicies entry needs a non-empty ExceptionType list.")
        unknown = [t for t in types if t not in STEP_EXCEPTION_TYPES | JOB_EXCEPTION_TYPES]
        if unknown:
            raise RetryPolicyError(f"Unknown retry ExceptionType '{unknown[0]}'; supported: "
                                   f"{', '.join(sorted(STEP_EXCEPTION_TYPES | JOB_EXCEPTION_TYPES))}.")
        max_attempts = _number(entry, "MaxAttempts", None)
        expire = _number(entry, "ExpireAfterMin", None)
        if max_attempts is not None and not 1 <= max_attempts <= MAX_ATTEMPTS_CAP:
            raise RetryPolicyError(f"RetryPolicies MaxAttempts must be between 1 and {MAX_ATTEMPTS_CAP}.")
        if expire is not None and expire > MAX_EXPIRE_AFTER_MIN:
            raise RetryPolicyError(f"RetryPolicies ExpireAfterMin must be at most {MAX_EXPIRE_AFTER_MIN}.")
        policies.append(RetryPolicy(
            exception_types=frozenset(types),
            interval_seconds=_number(entry, "IntervalSeconds", 1.0) or 0.0,
            backoff_rate=_number(entry, "BackoffRate", 2.0) or 0.0,
            max_attempts=int(max_attempts) if max_attempts is not None else None,
            expire_after_min=expire))
    return policies


def next_delay(policies: list[RetryPolicy], error_type: str | None, retries: dict[int, int],
               elapsed_seconds: float) -> tuple[int, float] | None:
    """(policy index, seconds to wait) for the next retry, or None when the failure is final.

    ``retries`` counts the retries already made per policy index; ``elapsed_seconds`` is the time
    since the step's first attempt started.
    """
    if error_type is None:
        return None
    for index, policy in enumerate(policies):
        if error_type not in policy.exception_types:
            continue
        done = retries.get(index, 0)
        delay = policy.interval_seconds * (policy.backoff_rate ** done)
        if policy.max_attempts is not None and done >= policy.max_attempts:
            return None
        if policy.expire_after_min is not None and elapsed_seconds + delay > policy.expire_after_min * 60:
            return None
        if policy.max_attempts is None and policy.expire_after_min is None and done >= 1:
            # Neither bound given (the SDK refuses that): retry once rather than forever.
            return None
        return index, delay
    return None
