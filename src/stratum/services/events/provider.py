"""EventBridge API: event buses, their resource policies (PutPermission / RemovePermission) and
PutEvents, including cross-account PutEvents onto another account's bus where its policy allows it;
rules and targets are in rules_api.

Every decision goes through the one policy evaluator: same account, the caller's identity policies
or the bus policy may allow; across accounts both must. Accepted events are appended to the bus's
durable log (``events_entries``) with a pending delivery per matching rule target, in one
transaction (see delivery).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from sqlalchemy import Connection

from stratum.auth.authorizer import tag_condition_keys
from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext
from stratum.services.events import archives, buses, delivery, rules
from stratum.services.events.archives_api import ArchivesApi
from stratum.services.events.buses import DEFAULT_BUS, BusRef
from stratum.services.events.destinations_api import DestinationsApi
from stratum.services.events.rules_api import RulesApi

ACTION = "events:"
MAX_TAGS = 50
# PutEvents accepts at most 256 KB of entries per request (sizes as EventBridge counts them).
MAX_PUT_EVENTS_BYTES = 256 * 1024
_CONDITION_TYPES = frozenset({"StringEquals"})
_CONDITION_KEYS = frozenset({"aws:PrincipalOrgID"})


def _bus_out(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": row["name"], "Arn": row["arn"], "CreationTime": row["created_at"],
                           "LastModifiedTime": row["updated_at"]}
    for key, column in (("Description", "description"), ("KmsKeyIdentifier", "kms_key_identifier"),
                        ("DeadLetterConfig", "dead_letter_config"), ("LogConfig", "log_config"),
                        ("Policy", "policy")):
        if row.get(column):
            out[key] = row[column]
    return out


def _entry_size(entry: dict[str, Any]) -> int:
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        if entry.get(key):
            size += len(entry[key].encode("utf-8"))
    return size + sum(len(r.encode("utf-8")) for r in entry.get("Resources") or [])


def _entry_error(entry: dict[str, Any]) -> dict[str, str] | None:
    """The per-entry failure PutEvents reports (the other entries still go through)."""
    for key in ("Source", "DetailType", "Detail"):
        if not entry.get(key):
            return {"ErrorCode": "InvalidArgument",
                    "ErrorMessage": f"Parameter {key} is not valid. Reason: {key} is a required argument."}
    try:
        detail = json.loads(entry["Detail"])
    except (ValueError, RecursionError):
        detail = None
    if not isinstance(detail, dict):
        return {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
    if entry["Source"].startswith("aws."):
        return {"ErrorCode": "NotAuthorizedForSourceException", "ErrorMessage": "Not authorized for the source."}
    return None


def _check_tags(tags: list[dict[str, str]]) -> None:
    keys = [t["Key"] for t in tags]
    if len(set(keys)) != len(keys):
        raise buses.validation("Tag keys must be unique.")
    if any(k.startswith("aws:") for k in keys):
        raise buses.validation("Tag keys starting with 'aws:' are reserved.")


def _merged_tags(existing: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    values = {t["Key"]: t["Value"] for t in existing}
    values.update({t["Key"]: t["Value"] for t in new})
    if len(values) > MAX_TAGS:
        raise ServiceError("LimitExceededException", f"A resource can have at most {MAX_TAGS} tags.", 400)
    return [{"Key": k, "Value": v} for k, v in values.items()]


class EventsProvider(RulesApi, DestinationsApi, ArchivesApi, Provider):
    service = "events"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        # Delivers matched events to targets, moves SageMaker's outbox onto buses, fires schedules.
        self.deliverer = delivery.Deliverer(app)
        app.add_background(self.deliverer)
        # How often archived events past their archive's RetentionDays are removed; tests shorten it.
        interval = float(os.environ.get("STRATUM_EVENTS_ARCHIVE_SWEEP_SECONDS", "3600"))
        app.add_background(archives.ArchiveRetentionSweeper(app.db, interval))

    # ------------------------------------------------------------------------------------ plumbing
    def _authorize(self, ctx: RequestContext, operation: str, ref: BusRef, bus: dict[str, Any] | None,
                   context: dict[str, Any] | None = None) -> None:
        ctx.authorize(ACTION + operation, ref.arn, resource_account=ref.account_id,
                      resource_policy=bus.get("policy") if bus else None, context=context)

    def _existing(self, ctx: RequestContext, conn: Connection, operation: str, ref: BusRef,
                  context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Look a bus up and authorize ``operation`` on it; a missing bus is authorized first."""
        bus = buses.get_bus(conn, ref)
        self._authorize(ctx, operation, ref, bus, context)
        if bus is None:
            raise buses.not_found(ref)
        return bus

    def _own(self, ctx: RequestContext, name: str | None) -> BusRef:
        ref = buses.resolve(ctx.account_id, ctx.region, name)
        if ref.account_id != ctx.account_id or ref.region != ctx.region:
            raise buses.validation("Only event buses of the calling account and region can be changed.")
        return ref

    # ---------------------------------------------------------------------------------------- buses
    def create_event_bus(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Name"]
        ref = BusRef(ctx.account_id, ctx.region, name)
        tags = params.get("Tags") or []
        self._authorize(ctx, "CreateEventBus", ref, None, tag_condition_keys(tags))
        if params.get("EventSourceName"):
            raise ServiceError("ResourceNotFoundException",
                               f"Event source {params['EventSourceName']} does not exist.", 400)
        if "/" in name:
            raise buses.validation("Event bus name must not contain '/'.")
        _check_tags(tags)
        if len(tags) > MAX_TAGS:
            raise ServiceError("LimitExceededException", f"A resource can have at most {MAX_TAGS} tags.", 400)
        with self.app.db.begin() as conn:
            row = buses.create_bus(conn, ref, description=params.get("Description"),
                                   kms_key=params.get("KmsKeyIdentifier"),
                                   dead_letter=params.get("DeadLetterConfig"), log_config=params.get("LogConfig"),
                                   tags=tags)
        out = _bus_out(row)
        out["EventBusArn"] = out.pop("Arn")
        for key in ("Name", "CreationTime", "LastModifiedTime"):
            out.pop(key, None)
        return out

    def describe_event_bus(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = buses.resolve(ctx.account_id, ctx.region, params.get("Name"))
        with self.app.db.read() as conn:
            bus = self._existing(ctx, conn, "DescribeEventBus", ref)
        return _bus_out(bus)

    def list_event_buses(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListEventBuses", "*")
        with self.app.db.read() as conn:
            rows = buses.list_buses(conn, ctx.account_id, ctx.region, params.get("NamePrefix"))
        after = _token_after(params.get("NextToken"))
        if after is not None:
            rows = [r for r in rows if r["name"] > after]
        limit = int(params.get("Limit") or 100)
        page = rows[:limit]
        out: dict[str, Any] = {"EventBuses": [_bus_out(r) for r in page]}
        if len(rows) > limit:
            out["NextToken"] = base64.urlsafe_b64encode(json.dumps({"after": page[-1]["name"]}).encode()).decode()
        return out

    def update_event_bus(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._own(ctx, params.get("Name"))
        changes = {column: params[key] for key, column in (
            ("Description", "description"), ("KmsKeyIdentifier", "kms_key_identifier"),
            ("DeadLetterConfig", "dead_letter_config"), ("LogConfig", "log_config")) if key in params}
        with self.app.db.begin() as conn:
            bus = self._existing(ctx, conn, "UpdateEventBus", ref)
            buses.save_bus(conn, bus, **changes)
            bus.update(changes)
        out = {"Arn": bus["arn"], "Name": bus["name"]}
        out.update({k: v for k, v in _bus_out(bus).items()
                    if k in ("Description", "KmsKeyIdentifier", "DeadLetterConfig", "LogConfig")})
        return out

    def delete_event_bus(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = BusRef(ctx.account_id, ctx.region, params["Name"])
        self._authorize(ctx, "DeleteEventBus", ref, None)
        if ref.name == DEFAULT_BUS:
            raise buses.validation("Cannot delete event bus default.")
        with self.app.db.begin() as conn:
            buses.delete_bus(conn, ref)  # deleting a bus that is not there succeeds, as on AWS
        return {}

    # ------------------------------------------------------------------------------- permissions
    def put_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._own(ctx, params.get("EventBusName"))
        policy = params.get("Policy")
        with self.app.db.begin() as conn:
            bus = self._existing(ctx, conn, "PutPermission", ref)
            if policy is not None:
                if any(params.get(k) for k in ("Action", "Principal", "StatementId", "Condition")):
                    raise buses.validation("Policy cannot be combined with Action, Principal, StatementId or "
                                           "Condition.")
                buses.check_policy(policy)
                new_policy: str | None = policy
            else:
                new_policy = buses.policy_text(self._with_statement(ref, bus, params))
                assert new_policy is not None
                buses.check_policy(new_policy)
            buses.save_bus(conn, bus, policy=new_policy)
        return {}

    @staticmethod
    def _with_statement(ref: BusRef, bus: dict[str, Any], params: dict[str, Any]) -> list[dict[str, Any]]:
        principal, statement_id = params.get("Principal"), params.get("StatementId")
        action, condition = params.get("Action"), params.get("Condition")
        if not principal:
            raise buses.validation("Parameter Principal must be specified.")
        if not statement_id:
            raise buses.validation("Parameter StatementId must be specified.")
        if action != "events:PutEvents":
            raise buses.validation("Provided value in parameter 'action' is not supported.")
        if condition:
            if principal != "*":
                raise ServiceError("InvalidParameterValue", "Value of the parameter 'principal' must be '*' "
                                   "when the parameter 'condition' is set.", 400)
            if condition["Type"] not in _CONDITION_TYPES or condition["Key"] not in _CONDITION_KEYS:
                raise buses.validation("Condition supports only Type StringEquals with Key aws:PrincipalOrgID.")
        existing = buses.statements(bus.get("policy"))
        if any(s.get("Sid") == statement_id for s in existing):
            raise ServiceError("ResourceAlreadyExistsException", "Statement with the provided id already exists.",
                               400)
        return [*existing, buses.permission_statement(ref, principal, statement_id, action, condition)]

    def remove_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._own(ctx, params.get("EventBusName"))
        statement_id = params.get("StatementId")
        remove_all = bool(params.get("RemoveAllPermissions"))
        if not statement_id and not remove_all:
            raise buses.validation("Either StatementId or RemoveAllPermissions must be specified.")
        with self.app.db.begin() as conn:
            bus = self._existing(ctx, conn, "RemovePermission", ref)
            if remove_all:
                remaining: list[dict[str, Any]] = []
            else:
                existing = buses.statements(bus.get("policy"))
                if not existing:
                    raise ServiceError("ResourceNotFoundException", "EventBus does not have a policy.", 400)
                remaining = [s for s in existing if s.get("Sid") != statement_id]
                if len(remaining) == len(existing):
                    raise ServiceError("ResourceNotFoundException",
                                       "Statement with the provided id does not exist.", 400)
            buses.save_bus(conn, bus, policy=buses.policy_text(remaining))
        return {}

    # ------------------------------------------------------------------------------------- events
    def put_events(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("EndpointId"):
            raise buses.validation("Global endpoints (EndpointId) are not supported by Stratum.")
        entries: list[dict[str, Any]] = params["Entries"]
        if sum(_entry_size(e) for e in entries) > MAX_PUT_EVENTS_BYTES:
            raise buses.validation("Total size of the entries in the request is over the limit.")
        results: list[dict[str, Any]] = []
        accepted: list[tuple[int, BusRef, dict[str, Any]]] = []
        known: dict[BusRef, dict[str, Any] | None] = {}
        with self.app.db.read() as conn:
            for entry in entries:
                try:
                    ref = buses.resolve(ctx.account_id, ctx.region, entry.get("EventBusName") or DEFAULT_BUS)
                except ServiceError as exc:
                    results.append({"ErrorCode": "InvalidArgument", "ErrorMessage": exc.message})
                    continue
                if ref not in known:
                    known[ref] = buses.get_bus(conn, ref)
                bus = known[ref]
                # Every bus an entry names must allow the caller, or the whole request is refused.
                self._authorize(ctx, "PutEvents", ref, bus, {
                    "events:source": entry.get("Source"), "events:detail-type": entry.get("DetailType")})
                if bus is None:
                    raise buses.not_found(ref)
                error = _entry_error(entry)
                if error is not None:
                    results.append(error)
                    continue
                accepted.append((len(results), ref, entry))
                results.append({})
            if not known:
                # No entry named a usable bus; the request itself still needs the permission.
                ref = BusRef(ctx.account_id, ctx.region, DEFAULT_BUS)
                self._authorize(ctx, "PutEvents", ref, buses.get_bus(conn, ref))
        stamp = delivery.now()
        with self.app.db.begin() as conn:
            for index, ref, entry in accepted:
                event = delivery.envelope("", source_account=ctx.account_id, region=ctx.region,
                                          source=entry["Source"], detail_type=entry["DetailType"],
                                          detail=json.loads(entry["Detail"]), resources=entry.get("Resources") or [],
                                          time=entry.get("Time") or stamp)
                results[index] = {"EventId": delivery.accept(conn, ref, event, stamp=stamp)}
        if accepted:
            self.deliverer.wake()
        return {"FailedEntryCount": sum(1 for r in results if "ErrorCode" in r), "Entries": results}

    # ---------------------------------------------------------------------------------------- tags
    def _tagged_bus(self, ctx: RequestContext, conn: Connection, operation: str, arn: str,
                    context: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            ref = buses.resolve(ctx.account_id, ctx.region, arn)
        except ServiceError:
            ctx.authorize(ACTION + operation, arn, context=context)
            raise ServiceError("ResourceNotFoundException", f"Resource {arn} does not exist.", 400) from None
        if not arn.startswith("arn:") or ref.account_id != ctx.account_id:
            self._authorize(ctx, operation, ref, None, context)
            raise ServiceError("ResourceNotFoundException", f"Resource {arn} does not exist.", 400)
        bus = buses.get_bus(conn, ref)
        self._authorize(ctx, operation, ref, bus, context)
        if bus is None:
            raise ServiceError("ResourceNotFoundException", f"Event bus {ref.name} does not exist.", 400)
        return bus

    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        tags = params["Tags"]
        _check_tags(tags)
        rule = rules.parse_rule_arn(params["ResourceARN"])
        if rule is not None:
            with self.app.db.begin() as conn:
                row = self._tagged_rule(ctx, conn, "TagResource", rule, tag_condition_keys(tags))
                rules.update_rule(conn, rule, tags=_merged_tags(row["tags"] or [], tags))
            return {}
        with self.app.db.begin() as conn:
            bus = self._tagged_bus(ctx, conn, "TagResource", params["ResourceARN"], tag_condition_keys(tags))
            buses.save_bus(conn, bus, tags=_merged_tags(bus["tags"] or [], tags))
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        keys = params["TagKeys"]
        rule = rules.parse_rule_arn(params["ResourceARN"])
        if rule is not None:
            with self.app.db.begin() as conn:
                row = self._tagged_rule(ctx, conn, "UntagResource", rule, tag_condition_keys(None, keys))
                rules.update_rule(conn, rule, tags=[t for t in row["tags"] or [] if t["Key"] not in set(keys)])
            return {}
        with self.app.db.begin() as conn:
            bus = self._tagged_bus(ctx, conn, "UntagResource", params["ResourceARN"],
                                   tag_condition_keys(None, keys))
            drop = set(keys)
            buses.save_bus(conn, bus, tags=[t for t in bus["tags"] or [] if t["Key"] not in drop])
        return {}

    def list_tags_for_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        rule = rules.parse_rule_arn(params["ResourceARN"])
        if rule is not None:
            with self.app.db.read() as conn:
                row = self._tagged_rule(ctx, conn, "ListTagsForResource", rule)
            return {"Tags": list(row["tags"] or [])}
        with self.app.db.read() as conn:
            bus = self._tagged_bus(ctx, conn, "ListTagsForResource", params["ResourceARN"])
        return {"Tags": list(bus["tags"] or [])}


def _token_after(token: str | None) -> str | None:
    if not token:
        return None
    try:
        return str(json.loads(base64.urlsafe_b64decode(token.encode()))["after"])
    except (ValueError, KeyError, TypeError):
        raise buses.validation("The NextToken is not valid.") from None
