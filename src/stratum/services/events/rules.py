"""Rules and their targets: storage, ARNs, and the checks PutRule and PutTargets make."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum.protocol.errors import ServiceError
from stratum.services.events import schedules
from stratum.services.events.buses import DEFAULT_BUS, BusRef, validation
from stratum.services.events.tables import events_rules, events_targets

ENABLED = "ENABLED"
DISABLED = "DISABLED"
STATES = (ENABLED, DISABLED, "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
MAX_TARGETS_PER_RULE = 5
_RULE_ARN = re.compile(r"^arn:aws[\w-]*:events:([a-z0-9-]+):(\d{12}):rule/(?:([/\.\-_A-Za-z0-9]+)/)?"
                       r"([\.\-_A-Za-z0-9]+)$")


def rule_arn(bus: BusRef, name: str) -> str:
    """Rules of the default bus are ``rule/<name>``, others ``rule/<bus>/<name>``."""
    path = name if bus.name == DEFAULT_BUS else f"{bus.name}/{name}"
    return f"arn:aws:events:{bus.region}:{bus.account_id}:rule/{path}"


@dataclass(frozen=True)
class RuleRef:
    bus: BusRef
    name: str

    @property
    def arn(self) -> str:
        return rule_arn(self.bus, self.name)


def parse_rule_arn(arn: str) -> RuleRef | None:
    m = _RULE_ARN.match(arn)
    if m is None:
        return None
    return RuleRef(BusRef(m.group(2), m.group(1), m.group(3) or DEFAULT_BUS), m.group(4))


def rule_not_found(ref: RuleRef) -> ServiceError:
    return ServiceError("ResourceNotFoundException", f"Rule {ref.name} does not exist on EventBus {ref.bus.name}.",
                        400)


def _scope(ref: RuleRef) -> Any:
    return ((events_rules.c.account_id == ref.bus.account_id) & (events_rules.c.region == ref.bus.region)
            & (events_rules.c.bus_name == ref.bus.name) & (events_rules.c.name == ref.name))


def _target_scope(ref: RuleRef) -> Any:
    return ((events_targets.c.account_id == ref.bus.account_id) & (events_targets.c.region == ref.bus.region)
            & (events_targets.c.bus_name == ref.bus.name) & (events_targets.c.rule_name == ref.name))


# ---------------------------------------------------------------------------------------- checks
def check_schedule(expression: str) -> schedules.Schedule:
    try:
        return schedules.parse(expression)
    except schedules.ScheduleError:
        raise validation("Parameter ScheduleExpression is not valid.") from None


# ------------------------------------------------------------------------------------------ rules
def get_rule(conn: Connection, ref: RuleRef, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(events_rules).where(_scope(ref))
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def save_rule(conn: Connection, ref: RuleRef, values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """PutRule: create, or update the given members of an existing rule (tags only on creation)."""
    existing = get_rule(conn, ref, lock=True)
    if existing is None:
        row = {"account_id": ref.bus.account_id, "region": ref.bus.region, "bus_name": ref.bus.name,
               "name": ref.name, "arn": ref.arn, "event_pattern": None, "schedule_expression": None,
               "state": ENABLED, "description": None, "role_arn": None, "managed_by": None, "tags": [],
               "next_fire_at": None, "created_at": now, "updated_at": now}
        row.update(values)
        conn.execute(insert(events_rules).values(**row))
        return row
    values = {k: v for k, v in values.items() if k != "tags"}
    values["updated_at"] = now
    conn.execute(update(events_rules).where(_scope(ref)).values(**values))
    existing.update(values)
    return existing


def update_rule(conn: Connection, ref: RuleRef, **values: Any) -> None:
    conn.execute(update(events_rules).where(_scope(ref)).values(**values))


def delete_rule(conn: Connection, ref: RuleRef) -> None:
    conn.execute(delete(events_rules).where(_scope(ref)))


def list_rules(conn: Connection, bus: BusRef, prefix: str | None) -> list[dict[str, Any]]:
    query = select(events_rules).where(
        (events_rules.c.account_id == bus.account_id) & (events_rules.c.region == bus.region)
        & (events_rules.c.bus_name == bus.name)).order_by(events_rules.c.name)
    return [dict(r) for r in conn.execute(query).mappings() if not prefix or r["name"].startswith(prefix)]


def enabled_pattern_rules(conn: Connection, bus: BusRef) -> list[Any]:
    """The rules an event on ``bus`` is matched against."""
    return list(conn.execute(select(events_rules.c.name, events_rules.c.arn, events_rules.c.event_pattern,
                                    events_rules.c.role_arn).where(
        (events_rules.c.account_id == bus.account_id) & (events_rules.c.region == bus.region)
        & (events_rules.c.bus_name == bus.name) & (events_rules.c.state != DISABLED)
        & events_rules.c.event_pattern.is_not(None))))


def due_schedules(conn: Connection, now: datetime, limit: int = 100) -> list[Any]:
    return list(conn.execute(select(events_rules).where(
        events_rules.c.next_fire_at.is_not(None) & (events_rules.c.next_fire_at <= now)
        & (events_rules.c.state != DISABLED)).order_by(events_rules.c.next_fire_at).limit(limit)))


def advance_schedule(conn: Connection, rule: Any, fired_at: datetime, next_fire: datetime | None) -> bool:
    """Move a rule's next firing on; False when another server fired this occurrence first."""
    result = conn.execute(update(events_rules).where(
        (events_rules.c.account_id == rule.account_id) & (events_rules.c.region == rule.region)
        & (events_rules.c.bus_name == rule.bus_name) & (events_rules.c.name == rule.name)
        & (events_rules.c.next_fire_at == fired_at)).values(next_fire_at=next_fire))
    return result.rowcount == 1


# ---------------------------------------------------------------------------------------- targets
def targets_of(conn: Connection, ref: RuleRef) -> list[dict[str, Any]]:
    rows = conn.execute(select(events_targets.c.target).where(_target_scope(ref))
                        .order_by(events_targets.c.target_id))
    return [dict(r.target) for r in rows]


def put_target(conn: Connection, ref: RuleRef, target: dict[str, Any], now: datetime) -> None:
    scope = _target_scope(ref) & (events_targets.c.target_id == target["Id"])
    exists = conn.execute(select(events_targets.c.target_id).where(scope)).first()
    if exists is not None:
        conn.execute(update(events_targets).where(scope).values(arn=target["Arn"], target=target))
        return
    conn.execute(insert(events_targets).values(
        account_id=ref.bus.account_id, region=ref.bus.region, bus_name=ref.bus.name, rule_name=ref.name,
        target_id=target["Id"], arn=target["Arn"], target=target, created_at=now))


def remove_target(conn: Connection, ref: RuleRef, target_id: str) -> bool:
    result = conn.execute(delete(events_targets).where(_target_scope(ref) & (events_targets.c.target_id == target_id)))
    return result.rowcount == 1


def rule_arns_targeting(conn: Connection, account_id: str, region: str, target_arn: str,
                        bus_name: str) -> list[str]:
    rows = conn.execute(select(events_targets.c.rule_name).where(
        (events_targets.c.account_id == account_id) & (events_targets.c.region == region)
        & (events_targets.c.bus_name == bus_name) & (events_targets.c.arn == target_arn))
        .order_by(events_targets.c.rule_name).distinct())
    return [r.rule_name for r in rows]
