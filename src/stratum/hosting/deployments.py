"""UpdateEndpoint's blue/green deployment policy (DeploymentConfig.BlueGreenUpdatePolicy): once the
new fleet (the pending deployment) is up, the traffic moves to it in steps instead of at once.

- ALL_AT_ONCE: all of it;
- CANARY: CanarySize first (a percentage of the traffic, or a number of the new fleet's
  instances), then the rest after WaitIntervalInSeconds;
- LINEAR: LinearStepSize more every WaitIntervalInSeconds.

After the last step the old fleet is kept for WaitIntervalInSeconds (the baking period) plus
TerminationWaitInSeconds, then the update is done and the old fleet stops. Until then an alarm of
AutoRollbackConfiguration in ALARM, or MaximumExecutionTimeoutInSeconds passing, rolls the update
back: the old fleet takes all the traffic again and the new one stops.

The step reached is kept in the pending deployment (``Traffic``: step index, the new fleet's share,
since when), so another server taking the endpoint over carries on where it was.
"""

from __future__ import annotations

from typing import Any


def policy_of(pending: dict[str, Any]) -> dict[str, Any] | None:
    return (pending.get("DeploymentConfig") or {}).get("BlueGreenUpdatePolicy")


def alarm_names(pending: dict[str, Any]) -> list[str]:
    rollback = (pending.get("DeploymentConfig") or {}).get("AutoRollbackConfiguration") or {}
    return [a["AlarmName"] for a in rollback.get("Alarms") or []]


def steps(routing: dict[str, Any], new_instances: int) -> list[float]:
    """The new fleet's share of the traffic at each step."""
    kind = routing["Type"]
    if kind == "ALL_AT_ONCE":
        return [1.0]
    size = routing["CanarySize" if kind == "CANARY" else "LinearStepSize"]
    value = float(size["Value"])
    share = value / 100.0 if size["Type"] == "CAPACITY_PERCENT" else value / max(new_instances, 1)
    share = min(max(share, 0.0), 1.0)
    if share >= 1.0:
        return [1.0]
    if kind == "CANARY":
        return [share, 1.0]
    shares = []
    k = 1
    while k * share < 1.0 - 1e-9:
        shares.append(round(k * share, 6))
        k += 1
    return [*shares, 1.0]


def next_step(pending: dict[str, Any], now: float, alarms_in_alarm: list[str]) -> tuple[str, Any] | None:
    """What to do with an update whose new fleet is up: ("rollback", reason), ("shift", traffic),
    ("deployed", None), or None (wait)."""
    policy = policy_of(pending)
    assert policy is not None
    if alarms_in_alarm:
        return ("rollback", f"The update was rolled back: alarm {', '.join(alarms_in_alarm)} went into ALARM state "
                            "during the deployment (AutoRollbackConfiguration).")
    timeout = policy.get("MaximumExecutionTimeoutInSeconds")
    if timeout and now - float(pending["StartTime"]) > float(timeout):
        return ("rollback", f"The update was rolled back: it did not complete within MaximumExecutionTimeoutInSeconds "
                            f"({timeout}).")
    routing = policy["TrafficRoutingConfiguration"]
    plan = steps(routing, sum(int(v["DesiredInstanceCount"]) for v in pending["Variants"]))
    traffic = pending.get("Traffic")
    if traffic is None:
        return ("shift", {"Step": 0, "Fraction": plan[0], "Since": now})
    step = int(traffic["Step"])
    hold = float(routing.get("WaitIntervalInSeconds") or 0)
    if step >= len(plan) - 1:
        hold += float(policy.get("TerminationWaitInSeconds") or 0)
    if now - float(traffic["Since"]) < hold:
        return None
    if step + 1 < len(plan):
        return ("shift", {"Step": step + 1, "Fraction": plan[step + 1], "Since": now})
    return ("deployed", None)
