"""EventBridge API for rules and targets: PutRule, DescribeRule, ListRules, ListRuleNamesByTarget,
EnableRule / DisableRule, DeleteRule, PutTargets / RemoveTargets / ListTargetsByRule and
TestEventPattern. Each authorizes the action on the rule's ARN
(``arn:aws:events:<region>:<account>:rule/[<bus>/]<name>``) before acting."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from stratum.auth import passrole
from stratum.auth.authorizer import tag_condition_keys
from stratum.protocol.errors import ServiceError
from stratum.server.context import RequestContext
from stratum.services.events import buses, patterns, rules, transform
from stratum.services.events.buses import DEFAULT_BUS
from stratum.services.events.rules import RuleRef
from stratum.services.events.targets import EVENTS_PRINCIPAL, kind_of

ACTION = "events:"
_EVENT_FIELDS = ("id", "account", "source", "time", "region", "resources", "detail-type")


def _now() -> datetime:
    return datetime.now(UTC)


def _rule_out(row: dict[str, Any], *, describe: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": row["name"], "Arn": row["arn"], "State": row["state"],
                           "EventBusName": row["bus_name"]}
    for key, column in (("EventPattern", "event_pattern"), ("ScheduleExpression", "schedule_expression"),
                        ("Description", "description"), ("RoleArn", "role_arn"), ("ManagedBy", "managed_by")):
        if row.get(column):
            out[key] = row[column]
    if describe:
        out["CreatedBy"] = row["account_id"]
    return out


def _page(items: list[Any], key: Any, params: dict[str, Any], limit_default: int = 100) -> tuple[list[Any], str | None]:
    token = params.get("NextToken")
    if token:
        try:
            after = str(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
        except (ValueError, KeyError, TypeError):
            raise buses.validation("The NextToken is not valid.") from None
        items = [i for i in items if key(i) > after]
    limit = int(params.get("Limit") or limit_default)
    page = items[:limit]
    if len(items) > limit:
        return page, base64.urlsafe_b64encode(json.dumps({"after": key(page[-1])}).encode()).decode()
    return page, None


class RulesApi:
    """Mixed into EventsProvider (which supplies ``app`` and the bus helpers)."""

    app: Any
    deliverer: Any

    # ------------------------------------------------------------------------------------ plumbing
    def _rule_ref(self, ctx: RequestContext, name: str, bus_name: str | None) -> RuleRef:
        return RuleRef(buses.resolve(ctx.account_id, ctx.region, bus_name), name)

    def _rule(self, ctx: RequestContext, conn: Connection, operation: str, ref: RuleRef, *,
              lock: bool = False, context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Authorize ``operation`` on the rule (existing or not), then find it."""
        ctx.authorize(ACTION + operation, ref.arn, resource_account=ref.bus.account_id, context=context)
        row = rules.get_rule(conn, ref, lock=lock)
        if row is None:
            raise rules.rule_not_found(ref)
        return row

    # --------------------------------------------------------------------------------------- rules
    def put_rule(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Name"], params.get("EventBusName"))
        tags = params.get("Tags") or []
        ctx.authorize(ACTION + "PutRule", ref.arn, resource_account=ref.bus.account_id,
                      context=tag_condition_keys(tags) if tags else None)
        pattern, schedule = params.get("EventPattern"), params.get("ScheduleExpression")
        if not pattern and not schedule:
            raise buses.validation("Parameter(s) EventPattern or ScheduleExpression must be specified.")
        if pattern:
            patterns.parse(pattern)
        parsed = rules.check_schedule(schedule) if schedule else None
        if parsed is not None and ref.bus.name != DEFAULT_BUS:
            raise buses.validation("ScheduleExpression is supported only on the default event bus.")
        state = params.get("State") or rules.ENABLED
        if state not in rules.STATES:
            raise buses.validation(f"Parameter State is not valid: {state}.")
        if params.get("RoleArn"):
            passrole.check_pass_role(ctx, params["RoleArn"], EVENTS_PRINCIPAL, validate_role=False)
        now = _now()
        minute = self.deliverer.minute_seconds
        values = {"event_pattern": pattern or None, "schedule_expression": schedule or None, "state": state,
                  "description": params.get("Description"), "role_arn": params.get("RoleArn"), "tags": tags,
                  "next_fire_at": parsed.next_after(now, minute) if parsed and state != rules.DISABLED else None}
        with self.app.db.begin() as conn:
            bus = buses.get_bus(conn, ref.bus)
            if bus is None:
                raise buses.not_found(ref.bus)
            existing = rules.get_rule(conn, ref, lock=True)
            if existing is not None and existing.get("managed_by"):
                raise ServiceError("ManagedRuleException", f"Rule {ref.name} is managed by "
                                   f"{existing['managed_by']} and cannot be changed.", 400)
            if existing is not None and existing["schedule_expression"] == values["schedule_expression"] \
                    and existing["next_fire_at"] is not None and state != rules.DISABLED:
                values["next_fire_at"] = existing["next_fire_at"]  # the same schedule keeps its rhythm
            rules.save_rule(conn, ref, values, now)
        return {"RuleArn": ref.arn}

    def describe_rule(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Name"], params.get("EventBusName"))
        with self.app.db.read() as conn:
            row = self._rule(ctx, conn, "DescribeRule", ref)
        return _rule_out(row, describe=True)

    def list_rules(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bus = buses.resolve(ctx.account_id, ctx.region, params.get("EventBusName"))
        ctx.authorize(ACTION + "ListRules", f"arn:aws:events:{bus.region}:{bus.account_id}:rule/*",
                      resource_account=bus.account_id)
        with self.app.db.read() as conn:
            if buses.get_bus(conn, bus) is None:
                raise buses.not_found(bus)
            rows = rules.list_rules(conn, bus, params.get("NamePrefix"))
        page, token = _page(rows, lambda r: r["name"], params)
        out: dict[str, Any] = {"Rules": [_rule_out(r) for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def list_rule_names_by_target(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bus = buses.resolve(ctx.account_id, ctx.region, params.get("EventBusName"))
        ctx.authorize(ACTION + "ListRuleNamesByTarget", f"arn:aws:events:{bus.region}:{bus.account_id}:rule/*",
                      resource_account=bus.account_id)
        with self.app.db.read() as conn:
            if buses.get_bus(conn, bus) is None:
                raise buses.not_found(bus)
            names = rules.rule_arns_targeting(conn, bus.account_id, bus.region, params["TargetArn"], bus.name)
        page, token = _page(names, lambda n: n, params)
        out: dict[str, Any] = {"RuleNames": page}
        if token:
            out["NextToken"] = token
        return out

    def _set_state(self, ctx: RequestContext, params: dict[str, Any], operation: str, state: str) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Name"], params.get("EventBusName"))
        now = _now()
        with self.app.db.begin() as conn:
            row = self._rule(ctx, conn, operation, ref, lock=True)
            values: dict[str, Any] = {"state": state, "updated_at": now}
            if row["schedule_expression"]:
                schedule = rules.check_schedule(row["schedule_expression"])
                values["next_fire_at"] = (schedule.next_after(now, self.deliverer.minute_seconds)
                                          if state == rules.ENABLED else None)
            rules.update_rule(conn, ref, **values)
        return {}

    def enable_rule(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_state(ctx, params, "EnableRule", rules.ENABLED)

    def disable_rule(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_state(ctx, params, "DisableRule", rules.DISABLED)

    def delete_rule(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Name"], params.get("EventBusName"))
        ctx.authorize(ACTION + "DeleteRule", ref.arn, resource_account=ref.bus.account_id)
        with self.app.db.begin() as conn:
            row = rules.get_rule(conn, ref, lock=True)
            if row is None:
                return {}  # deleting a rule that is not there succeeds, as on AWS
            if row.get("managed_by") and not params.get("Force"):
                raise ServiceError("ManagedRuleException", f"Rule {ref.name} is managed by {row['managed_by']}.", 400)
            if rules.targets_of(conn, ref):
                raise buses.validation("Rule can't be deleted since it has targets.")
            rules.delete_rule(conn, ref)
        return {}

    # ------------------------------------------------------------------------------------- targets
    def put_targets(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Rule"], params.get("EventBusName"))
        targets: list[dict[str, Any]] = params["Targets"]
        ids = [t["Id"] for t in targets]
        if len(set(ids)) != len(ids):
            raise buses.validation("Target ids must be unique within a request.")
        failed: list[dict[str, str]] = []
        accepted: list[dict[str, Any]] = []
        now = _now()
        with self.app.db.begin() as conn:
            row = self._rule(ctx, conn, "PutTargets", ref, lock=True)
            for target in targets:
                try:
                    transform.check(target)
                except transform.InputError as exc:
                    raise buses.validation(str(exc)) from None
                kind = kind_of(target["Arn"])
                if kind is None:
                    failed.append({"TargetId": target["Id"], "ErrorCode": "ValidationException",
                                   "ErrorMessage": f"Target {target['Arn']} is not a target Stratum delivers to "
                                                   "(event buses and SageMaker pipelines)."})
                    continue
                kind.check(target, ref.bus, row["role_arn"])
                if target.get("RoleArn"):
                    passrole.check_pass_role(ctx, target["RoleArn"], EVENTS_PRINCIPAL, validate_role=False)
                accepted.append({k: v for k, v in target.items() if v is not None})
            existing = {t["Id"] for t in rules.targets_of(conn, ref)}
            if len(existing | {t["Id"] for t in accepted}) > rules.MAX_TARGETS_PER_RULE:
                raise ServiceError("LimitExceededException",
                                   "The requested resource exceeds the maximum number allowed.", 400)
            for target in accepted:
                rules.put_target(conn, ref, target, now)
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def remove_targets(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Rule"], params.get("EventBusName"))
        with self.app.db.begin() as conn:
            self._rule(ctx, conn, "RemoveTargets", ref, lock=True)
            for target_id in params["Ids"]:
                rules.remove_target(conn, ref, target_id)
        return {"FailedEntryCount": 0, "FailedEntries": []}

    def list_targets_by_rule(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._rule_ref(ctx, params["Rule"], params.get("EventBusName"))
        with self.app.db.read() as conn:
            self._rule(ctx, conn, "ListTargetsByRule", ref)
            targets = rules.targets_of(conn, ref)
        page, token = _page(targets, lambda t: t["Id"], params)
        out: dict[str, Any] = {"Targets": page}
        if token:
            out["NextToken"] = token
        return out

    # ----------------------------------------------------------------------------- pattern testing
    def test_event_pattern(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "TestEventPattern", "*")
        node = patterns.parse(params["EventPattern"])
        try:
            event = json.loads(params["Event"])
        except (ValueError, RecursionError):
            raise buses.validation("Parameter Event is not valid.") from None
        if not isinstance(event, dict) or any(k not in event for k in _EVENT_FIELDS):
            missing = [k for k in _EVENT_FIELDS if not isinstance(event, dict) or k not in event]
            raise buses.validation(f"Parameter Event is not valid. Reason: missing required fields {missing}.")
        return {"Result": node.matches(event)}

    # ------------------------------------------------------------------------------------ rule tags
    def _tagged_rule(self, ctx: RequestContext, conn: Connection, operation: str, ref: RuleRef,
                     context: dict[str, Any] | None = None) -> dict[str, Any]:
        ctx.authorize(ACTION + operation, ref.arn, resource_account=ref.bus.account_id, context=context)
        row = rules.get_rule(conn, ref, lock=operation != "ListTagsForResource")
        if row is None or ref.bus.account_id != ctx.account_id or ref.bus.region != ctx.region:
            raise rules.rule_not_found(ref)
        return row
