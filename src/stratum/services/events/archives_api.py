"""EventBridge API for archives and replays: CreateArchive, DescribeArchive, ListArchives,
UpdateArchive, DeleteArchive, StartReplay, DescribeReplay, ListReplays, CancelReplay.

Each authorizes its action on the archive's or replay's ARN
(``arn:aws:events:<region>:<account>:archive/<name>``, ``...:replay/<name>``); CreateArchive also
on the source bus and StartReplay also on the archive it reads, both of the caller's own account
(another account's bus or archive is refused like any resource without a policy for the caller)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from stratum.protocol.errors import ServiceError
from stratum.server.context import RequestContext
from stratum.services.events import archives, buses, patterns, rules
from stratum.services.events.archives import ArchiveRef, ReplayRef
from stratum.services.events.rules_api import _page

ACTION = "events:"
_EVENTS_ARN_ACCOUNT = re.compile(r"^arn:aws[\w-]*:events:[a-z0-9-]*:(\d{12}):")


def _archive_out(row: dict[str, Any], counts: tuple[int, int], *, describe: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"ArchiveName": row["name"], "EventSourceArn": row["bus_arn"], "State": row["state"],
                           "RetentionDays": row["retention_days"], "SizeBytes": counts[1],
                           "EventCount": counts[0], "CreationTime": row["created_at"]}
    if describe:
        out["ArchiveArn"] = row["arn"]
        for key, column in (("Description", "description"), ("EventPattern", "event_pattern"),
                            ("KmsKeyIdentifier", "kms_key_identifier")):
            if row.get(column):
                out[key] = row[column]
    return out


def _replay_out(row: dict[str, Any], *, describe: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"ReplayName": row["name"], "EventSourceArn": row["archive_arn"], "State": row["state"],
                           "EventStartTime": row["event_start_time"], "EventEndTime": row["event_end_time"],
                           "ReplayStartTime": row["replay_start_time"]}
    for key, column in (("StateReason", "state_reason"), ("EventLastReplayedTime", "last_replayed_time"),
                        ("ReplayEndTime", "replay_end_time")):
        if row.get(column) is not None:
            out[key] = row[column]
    if describe:
        out["ReplayArn"] = row["arn"]
        out["Destination"] = row["destination"]
        if row.get("description"):
            out["Description"] = row["description"]
    return out


def _filtered(rows: list[dict[str, Any]], params: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """ListArchives / ListReplays filters: NamePrefix, EventSourceArn (the row's ``source`` column)
    and State."""
    prefix, arn, state = params.get("NamePrefix"), params.get("EventSourceArn"), params.get("State")
    return [r for r in rows if (not prefix or r["name"].startswith(prefix)) and (not arn or r[source] == arn)
            and (not state or r["state"] == state)]


def _one_filter(params: dict[str, Any], operation: str) -> None:
    if sum(1 for key in ("NamePrefix", "EventSourceArn", "State") if params.get(key)) > 1:
        raise buses.validation(f"At most one filter is allowed for {operation}. "
                               "Use either : State, EventSourceArn, or NamePrefix.")


def _authorize_source(ctx: RequestContext, operation: str, arn: str) -> None:
    """Authorize ``operation`` on the EventSourceArn as given, before its kind is checked: another
    account's resource, whatever it is, is refused (AccessDenied) rather than described."""
    m = _EVENTS_ARN_ACCOUNT.match(arn)
    if m is not None:
        ctx.authorize(ACTION + operation, arn, resource_account=m.group(1))


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


class ArchivesApi:
    """Mixed into EventsProvider (which supplies ``app`` and ``deliverer``)."""

    app: Any
    deliverer: Any

    def _archive(self, ctx: RequestContext, conn: Any, operation: str, ref: ArchiveRef, *,
                 lock: bool = False) -> dict[str, Any]:
        ctx.authorize(ACTION + operation, ref.arn, resource_account=ref.account_id)
        row = archives.get_archive(conn, ref, lock=lock)
        if row is None:
            raise archives.archive_not_found(ref.name)
        return row

    def _replay(self, ctx: RequestContext, conn: Any, operation: str, ref: ReplayRef, *,
                lock: bool = False) -> dict[str, Any]:
        ctx.authorize(ACTION + operation, ref.arn, resource_account=ref.account_id)
        row = archives.get_replay(conn, ref, lock=lock)
        if row is None:
            raise archives.replay_not_found(ref.name)
        return row

    # ------------------------------------------------------------------------------------ archives
    def create_archive(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ArchiveRef(ctx.account_id, ctx.region, params["ArchiveName"])
        ctx.authorize(ACTION + "CreateArchive", ref.arn, resource_account=ref.account_id)
        # An archive follows a bus of its own account and region: another's is refused as any
        # resource whose owner granted the caller nothing.
        _authorize_source(ctx, "CreateArchive", params["EventSourceArn"])
        bus = buses.resolve(ctx.account_id, ctx.region, params["EventSourceArn"])
        if bus.account_id != ctx.account_id or bus.region != ctx.region:
            raise buses.validation(f"Parameter EventSourceArn is not valid. Reason: Event bus {bus.name} "
                                   "is not in the account and region of the archive.")
        if params.get("EventPattern"):
            patterns.parse(params["EventPattern"])
        with self.app.db.begin() as conn:
            if buses.get_bus(conn, bus) is None:
                raise buses.not_found(bus)
            if archives.get_archive(conn, ref) is not None:
                raise ServiceError("ResourceAlreadyExistsException", f"Archive {ref.name} already exists.", 400)
            row = archives.create_archive(conn, ref, bus, {
                "description": params.get("Description"), "event_pattern": params.get("EventPattern") or None,
                "retention_days": params.get("RetentionDays") or 0,
                "kms_key_identifier": params.get("KmsKeyIdentifier")})
        return {"ArchiveArn": ref.arn, "State": row["state"], "CreationTime": row["created_at"]}

    def describe_archive(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ArchiveRef(ctx.account_id, ctx.region, params["ArchiveName"])
        with self.app.db.read() as conn:
            row = self._archive(ctx, conn, "DescribeArchive", ref)
            counts = archives.sizes(conn, ref.account_id, ref.region, [ref.name]).get(ref.name, (0, 0))
        return _archive_out(row, counts, describe=True)

    def list_archives(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListArchives", ctx.arn("events", "archive/*"), resource_account=ctx.account_id)
        _one_filter(params, "ListArchives")
        with self.app.db.read() as conn:
            rows = _filtered(archives.list_archives(conn, ctx.account_id, ctx.region), params, "bus_arn")
            page, token = _page(rows, lambda r: r["name"], params)
            counts = archives.sizes(conn, ctx.account_id, ctx.region, [r["name"] for r in page])
        out: dict[str, Any] = {"Archives": [_archive_out(r, counts.get(r["name"], (0, 0)), describe=False)
                                            for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def update_archive(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ArchiveRef(ctx.account_id, ctx.region, params["ArchiveName"])
        values: dict[str, Any] = {}
        if "EventPattern" in params:
            if params["EventPattern"]:
                patterns.parse(params["EventPattern"])
            values["event_pattern"] = params["EventPattern"] or None
        for key, column in (("Description", "description"), ("RetentionDays", "retention_days"),
                            ("KmsKeyIdentifier", "kms_key_identifier")):
            if key in params:
                values[column] = params[key]
        with self.app.db.begin() as conn:
            row = self._archive(ctx, conn, "UpdateArchive", ref, lock=True)
            if values:
                archives.update_archive(conn, ref, values)
        return {"ArchiveArn": ref.arn, "State": row["state"], "CreationTime": row["created_at"]}

    def delete_archive(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ArchiveRef(ctx.account_id, ctx.region, params["ArchiveName"])
        with self.app.db.begin() as conn:
            self._archive(ctx, conn, "DeleteArchive", ref, lock=True)
            archives.delete_archive(conn, ref)
        return {}

    # ------------------------------------------------------------------------------------- replays
    def start_replay(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ReplayRef(ctx.account_id, ctx.region, params["ReplayName"])
        ctx.authorize(ACTION + "StartReplay", ref.arn, resource_account=ref.account_id)
        # the archive read: another account's is refused (archives have no resource policy)
        _authorize_source(ctx, "StartReplay", params["EventSourceArn"])
        archive_ref = archives.parse_archive_arn(params["EventSourceArn"])
        if archive_ref is None:
            raise buses.validation("Parameter EventSourceArn is not valid. Reason: Must contain an archive ARN.")
        destination = dict(params["Destination"])
        try:
            bus = buses.resolve(ctx.account_id, ctx.region, destination["Arn"])
        except ServiceError:
            bus = None
        if bus is None or not destination["Arn"].startswith("arn:"):
            raise buses.validation("Parameter Destination.Arn is not valid. Reason: Must contain an event bus ARN.")
        start, end = _utc(params["EventStartTime"]), _utc(params["EventEndTime"])
        with self.app.db.begin() as conn:
            archive = archives.get_archive(conn, archive_ref)
            if archive is None or archive_ref.region != ctx.region:
                raise buses.validation(f"Parameter EventSourceArn is not valid. Reason: Archive {archive_ref.name} "
                                       "does not exist.")
            if bus.arn != archive["bus_arn"]:
                raise buses.validation("Parameter Destination.Arn is not valid. "
                                       "Reason: Cross event bus replay is not permitted.")
            if start >= end:
                raise buses.validation("Parameter EventEndTime is not valid. "
                                       "Reason: EventStartTime must be before EventEndTime.")
            for arn in destination.get("FilterArns") or []:
                rule = rules.parse_rule_arn(arn)
                if rule is None or rule.bus != bus or rules.get_rule(conn, rule) is None:
                    raise buses.validation(f"Parameter Destination.FilterArns is not valid. Reason: Rule {arn} "
                                           f"does not exist on event bus {bus.name}.")
            if archives.get_replay(conn, ref) is not None:
                raise ServiceError("ResourceAlreadyExistsException", f"Replay {ref.name} already exists.", 400)
            row = archives.create_replay(conn, ref, {
                "description": params.get("Description"), "archive_name": archive_ref.name,
                "archive_arn": archive_ref.arn, "destination": destination,
                "event_start_time": start, "event_end_time": end})
        self.deliverer.wake()
        return {"ReplayArn": ref.arn, "State": row["state"], "ReplayStartTime": row["replay_start_time"]}

    def describe_replay(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ReplayRef(ctx.account_id, ctx.region, params["ReplayName"])
        with self.app.db.read() as conn:
            row = self._replay(ctx, conn, "DescribeReplay", ref)
        return _replay_out(row, describe=True)

    def list_replays(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "ListReplays", ctx.arn("events", "replay/*"), resource_account=ctx.account_id)
        _one_filter(params, "ListReplays")
        with self.app.db.read() as conn:
            rows = _filtered(archives.list_replays(conn, ctx.account_id, ctx.region), params, "archive_arn")
        page, token = _page(rows, lambda r: r["name"], params)
        out: dict[str, Any] = {"Replays": [_replay_out(r, describe=False) for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def cancel_replay(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = ReplayRef(ctx.account_id, ctx.region, params["ReplayName"])
        with self.app.db.begin() as conn:
            row = self._replay(ctx, conn, "CancelReplay", ref, lock=True)
            if row["state"] not in (archives.STARTING, archives.RUNNING):
                raise ServiceError("IllegalStatusException",
                                   f"Replay {ref.name} is not in a valid state for this operation.", 400)
            archives.update_replay(conn, ref, state=archives.CANCELLING)
        self.deliverer.wake()
        return {"ReplayArn": ref.arn, "State": archives.CANCELLING}
