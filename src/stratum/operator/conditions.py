"""ACK's condition conventions (github.com/aws-controllers-k8s/runtime, apis/core/v1alpha1/conditions.go
and pkg/condition): the types, their standard messages, and Ready derived from the others."""

from __future__ import annotations

import datetime as dt
from typing import Any

SYNCED = "ACK.ResourceSynced"
TERMINAL = "ACK.Terminal"
RECOVERABLE = "ACK.Recoverable"
ADOPTED = "ACK.Adopted"
READY = "Ready"

SYNCED_MESSAGE = "Resource synced successfully"
NOT_SYNCED_MESSAGE = "Resource not synced"
UNKNOWN_SYNCED_MESSAGE = "Unable to determine if desired resource state matches latest observed state"
UNAVAILABLE_ROLE_MESSAGE = "IAM Role is not available"
NOT_MANAGED_MESSAGE = "Resource already exists"
NOT_MANAGED_REASON = ("This resource already exists but is not managed by ACK. To bring the resource under "
                      "ACK management, you should explicitly adopt the resource by populating the "
                      "`services.k8s.aws/adoption-policy` and `services.k8s.aws/adoption-fields` annotations.")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(type_: str, status: bool | None, message: str | None = None,
              reason: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"type": type_, "status": {True: "True", False: "False", None: "Unknown"}[status]}
    if message:
        c["message"] = message
    if reason:
        c["reason"] = reason
    return c


def merge(previous: list[dict[str, Any]] | None, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new conditions, plus Ready derived as ACK derives it, each keeping its lastTransitionTime
    while its status does not change (so an unchanged resource gives an identical status)."""
    by_type = {c["type"]: c for c in new}
    terminal, recoverable, synced = by_type.get(TERMINAL), by_type.get(RECOVERABLE), by_type.get(SYNCED)
    if terminal and terminal["status"] == "True":
        ready = condition(READY, False, terminal.get("message"), TERMINAL)
    elif recoverable and recoverable["status"] == "True":
        ready = condition(READY, False, recoverable.get("message"), RECOVERABLE)
    elif synced:
        ready = condition(READY, None, synced.get("message"), synced.get("reason"))
        ready["status"] = synced["status"]
    else:
        ready = condition(READY, None, UNKNOWN_SYNCED_MESSAGE)
    old = {c.get("type"): c for c in previous or []}
    out = []
    for c in [*new, ready]:
        before = old.get(c["type"])
        c["lastTransitionTime"] = (before.get("lastTransitionTime") if before and before.get("status") == c["status"]
                                   and before.get("lastTransitionTime") else _now())
        out.append(c)
    return out
