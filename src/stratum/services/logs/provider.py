"""CloudWatch Logs API (JSON 1.1, target prefix Logs_20140328).

Groups and streams are rows (catalog); events are append-only files per stream (eventstore),
which is also where job output lands as the job runs. Every operation authorizes ``logs:<Op>`` on
the log group ARN (the log-stream ARN for stream-level operations); a group named by ARN in
another account is authorized against that account, so without a grant the caller gets
AccessDeniedException, and by name it only ever finds its own account's groups.
"""

from __future__ import annotations

import base64
import heapq
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stratum.protocol.errors import ServiceError
from stratum.server.context import Provider, RequestContext, blocking
from stratum.services.logs import catalog, retention
from stratum.services.logs.catalog import group_arn, invalid, not_found, stream_arn
from stratum.services.logs.eventstore import Event, StreamReader, StreamWriter, exclusive, now_ms
from stratum.services.logs.patterns import PatternError, compile_pattern, prefilter

ACTION = "logs:"
RETENTION_DAYS = frozenset({1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                            2557, 2922, 3288, 3653})
MAX_EVENTS = 10_000
MAX_RESPONSE_BYTES = 1_048_576
EVENT_OVERHEAD = 26  # bytes AWS counts per event towards batch and page sizes
MAX_BATCH_BYTES = 1_048_576
DAY_MS = 86_400_000


def _token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _untoken(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError:
        raise invalid("The specified nextToken is invalid.") from None
    if not isinstance(data, dict):
        raise invalid("The specified nextToken is invalid.")
    return data


def _event_out(e: Event) -> dict[str, Any]:
    return {"timestamp": e.timestamp, "message": e.message.decode("utf-8", "replace"), "ingestionTime": e.ingestion}


class LogsProvider(Provider):
    service = "logs"

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        # How often expired streams are emptied in the background; tests shorten it.
        interval = float(os.environ.get("STRATUM_LOGS_RETENTION_SWEEP_SECONDS", "3600"))
        app.add_background(retention.RetentionSweeper(app.db, Path(app.settings.data_dir), interval))

    # ------------------------------------------------------------------------------------ plumbing
    @property
    def data_dir(self) -> Path:
        return Path(self.app.settings.data_dir)

    def _group_ref(self, ctx: RequestContext, params: dict[str, Any]) -> tuple[str, str, str]:
        """(account, region, name) from logGroupName or logGroupIdentifier (a name or an ARN)."""
        name = params.get("logGroupName")
        ident = params.get("logGroupIdentifier")
        if name and ident:
            raise invalid("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if ident and ident.startswith("arn:"):
            parts = ident.split(":", 5)
            if len(parts) < 6 or parts[2] != "logs" or not parts[5].startswith("log-group:"):
                raise invalid(f"Invalid log group identifier {ident}.")
            group = parts[5][len("log-group:"):]
            if group.endswith(":*"):
                group = group[:-2]
            return parts[4], parts[3], group
        name = name or ident
        if not name:
            raise invalid("Either logGroupName or logGroupIdentifier must be given.")
        return ctx.account_id, ctx.region, name

    def _authorize(self, ctx: RequestContext, operation: str, account: str, region: str, group: str,
                   stream: str | None = None, context: dict[str, Any] | None = None) -> None:
        arn = stream_arn(region, account, group, stream) if stream is not None else group_arn(region, account, group)
        ctx.authorize(ACTION + operation, arn, resource_account=account, context=context)

    def _group(self, account: str, region: str, name: str) -> dict[str, Any]:
        with self.app.db.read() as conn:
            group = catalog.get_group(conn, account, region, name)
        if group is None:
            raise not_found("log group")
        return group

    def _stream(self, account: str, region: str, group: str, name: str) -> dict[str, Any]:
        with self.app.db.read() as conn:
            if catalog.get_group(conn, account, region, group) is None:
                raise not_found("log group")
            stream = catalog.get_stream(conn, account, region, group, name)
        if stream is None:
            raise not_found("log stream")
        return stream

    def _cutoff(self, group: dict[str, Any]) -> int:
        return retention.cutoff(group)

    def _reader(self, stream: dict[str, Any]) -> StreamReader:
        return StreamReader(self.data_dir / stream["path"])

    def _group_out(self, group: dict[str, Any], stored: int | None = None) -> dict[str, Any]:
        arn = group_arn(group["region"], group["account_id"], group["name"])
        out: dict[str, Any] = {"logGroupName": group["name"], "creationTime": group["created_at"],
                               "metricFilterCount": 0, "arn": arn + ":*", "logGroupArn": arn,
                               "storedBytes": stored or 0, "logGroupClass": group["log_group_class"]}
        if group.get("retention_days"):
            out["retentionInDays"] = group["retention_days"]
        if group.get("kms_key_id"):
            out["kmsKeyId"] = group["kms_key_id"]
        return out

    def _stored_bytes(self, account: str, region: str, name: str) -> int:
        with self.app.db.read() as conn:
            streams = catalog.list_streams(conn, account, region, name)
        total = 0
        for s in streams:
            try:
                total += (self.data_dir / s["path"]).stat().st_size
            except FileNotFoundError:
                pass
        return total

    # ---------------------------------------------------------------------------------------- groups
    def create_log_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["logGroupName"]
        tags = params.get("tags") or {}
        context = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        if tags:
            context["aws:TagKeys"] = list(tags)
        self._authorize(ctx, "CreateLogGroup", ctx.account_id, ctx.region, name, context=context)
        _check_group_name(name)
        with self.app.db.begin() as conn:
            created = catalog.create_group(conn, ctx.account_id, ctx.region, name, tags=tags,
                                           kms_key_id=params.get("kmsKeyId"),
                                           log_group_class=params.get("logGroupClass"))
        if not created:
            raise ServiceError("ResourceAlreadyExistsException", "The specified log group already exists", 400)
        return {}

    def delete_log_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, name = self._group_ref(ctx, params)
        self._authorize(ctx, "DeleteLogGroup", account, region, name)
        with self.app.db.begin() as conn:
            if catalog.get_group(conn, account, region, name) is None:
                raise not_found("log group")
            paths = catalog.delete_group(conn, account, region, name)
        catalog.remove_files(self.data_dir, paths)
        return {}

    def describe_log_groups(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize(ACTION + "DescribeLogGroups", ctx.arn("logs", "log-group:*"))
        prefix = params.get("logGroupNamePrefix")
        pattern = params.get("logGroupNamePattern")
        if prefix and pattern:
            raise invalid("LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.")
        with self.app.db.read() as conn:
            groups = catalog.list_groups(conn, ctx.account_id, ctx.region, prefix)
        if pattern:
            groups = [g for g in groups if pattern.lower() in g["name"].lower()]
        if params.get("logGroupIdentifiers"):
            # An ARN names its own account's group: another account's (with no monitoring link)
            # matches none of the caller's, even a namesake.
            wanted = {i.removesuffix(":*") if i.startswith("arn:") else group_arn(ctx.region, ctx.account_id, i)
                      for i in params["logGroupIdentifiers"]}
            groups = [g for g in groups if group_arn(g["region"], g["account_id"], g["name"]) in wanted]
        if params.get("logGroupClass"):
            groups = [g for g in groups if g["log_group_class"] == params["logGroupClass"]]
        after = (_untoken(params.get("nextToken")) or {}).get("after")
        if after is not None:
            groups = [g for g in groups if g["name"] > after]
        limit = _limit(params.get("limit"), 50)
        page = groups[:limit]
        out: dict[str, Any] = {"logGroups": [
            self._group_out(g, self._stored_bytes(g["account_id"], g["region"], g["name"])) for g in page]}
        if len(groups) > limit:
            out["nextToken"] = _token({"after": page[-1]["name"]})
        return out

    def put_retention_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, name = self._group_ref(ctx, params)
        self._authorize(ctx, "PutRetentionPolicy", account, region, name)
        days = params["retentionInDays"]
        if days not in RETENTION_DAYS:
            raise invalid(f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy "
                          f"constraint: Member must satisfy enum value set: {sorted(RETENTION_DAYS)}")
        with self.app.db.begin() as conn:
            if catalog.get_group(conn, account, region, name) is None:
                raise not_found("log group")
            catalog.update_group(conn, account, region, name, retention_days=days)
        self._enforce_retention(self._group(account, region, name))
        return {}

    def delete_retention_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, name = self._group_ref(ctx, params)
        self._authorize(ctx, "DeleteRetentionPolicy", account, region, name)
        with self.app.db.begin() as conn:
            if catalog.get_group(conn, account, region, name) is None:
                raise not_found("log group")
            catalog.update_group(conn, account, region, name, retention_days=None)
        return {}

    def _enforce_retention(self, group: dict[str, Any]) -> None:
        retention.enforce(self.app.db, self.data_dir, group)

    # -------------------------------------------------------------------------------------- tags
    def _tag_target(self, ctx: RequestContext, arn: str) -> tuple[str, str, str]:
        parts = arn.split(":", 5)
        if len(parts) < 6 or parts[0] != "arn" or parts[2] != "logs" or not parts[5].startswith("log-group:"):
            raise invalid(f"Invalid resourceArn {arn}.")
        name = parts[5][len("log-group:"):].removesuffix(":*")
        return parts[4], parts[3], name

    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, name = self._tag_target(ctx, params["resourceArn"])
        return self._tag(ctx, "TagResource", account, region, name, params.get("tags") or {})

    def tag_log_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._tag(ctx, "TagLogGroup", ctx.account_id, ctx.region, params["logGroupName"],
                         params.get("tags") or {})

    def _tag(self, ctx: RequestContext, op: str, account: str, region: str, name: str,
             tags: dict[str, str]) -> dict[str, Any]:
        context: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        context["aws:TagKeys"] = list(tags)
        self._authorize(ctx, op, account, region, name, context=context)
        if any(k.startswith("aws:") for k in tags):
            raise invalid("Tag keys starting with 'aws:' are reserved.")
        with self.app.db.begin() as conn:
            group = catalog.get_group(conn, account, region, name)
            if group is None:
                raise not_found("log group")
            merged = {**(group["tags"] or {}), **tags}
            if len(merged) > 50:
                raise invalid("A log group can have at most 50 tags.")
            catalog.update_group(conn, account, region, name, tags=merged)
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, name = self._tag_target(ctx, params["resourceArn"])
        return self._untag(ctx, "UntagResource", account, region, name, params.get("tagKeys") or [])

    def untag_log_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._untag(ctx, "UntagLogGroup", ctx.account_id, ctx.region, params["logGroupName"],
                           params.get("tags") or [])

    def _untag(self, ctx: RequestContext, op: str, account: str, region: str, name: str,
               keys: list[str]) -> dict[str, Any]:
        self._authorize(ctx, op, account, region, name, context={"aws:TagKeys": list(keys)})
        with self.app.db.begin() as conn:
            group = catalog.get_group(conn, account, region, name)
            if group is None:
                raise not_found("log group")
            catalog.update_group(conn, account, region, name,
                                 tags={k: v for k, v in (group["tags"] or {}).items() if k not in keys})
        return {}

    def list_tags_for_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, name = self._tag_target(ctx, params["resourceArn"])
        self._authorize(ctx, "ListTagsForResource", account, region, name)
        return {"tags": dict(self._group(account, region, name)["tags"] or {})}

    def list_tags_log_group(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["logGroupName"]
        self._authorize(ctx, "ListTagsLogGroup", ctx.account_id, ctx.region, name)
        return {"tags": dict(self._group(ctx.account_id, ctx.region, name)["tags"] or {})}

    # --------------------------------------------------------------------------------------- streams
    def create_log_stream(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, group = self._group_ref(ctx, params)
        name = params["logStreamName"]
        self._authorize(ctx, "CreateLogStream", account, region, group)
        if ":" in name or "*" in name:
            raise invalid("Log stream name must not contain ':' or '*'.")
        with self.app.db.begin() as conn:
            if catalog.get_group(conn, account, region, group) is None:
                raise not_found("log group")
            if not catalog.create_stream(conn, account, region, group, name):
                raise ServiceError("ResourceAlreadyExistsException", "The specified log stream already exists", 400)
        return {}

    def delete_log_stream(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, group = self._group_ref(ctx, params)
        name = params["logStreamName"]
        self._authorize(ctx, "DeleteLogStream", account, region, group, name)
        stream = self._stream(account, region, group, name)
        with self.app.db.begin() as conn:
            catalog.delete_stream(conn, account, region, group, name)
        catalog.remove_files(self.data_dir, [stream["path"]])
        return {}

    @blocking
    def describe_log_streams(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, group_name = self._group_ref(ctx, params)
        self._authorize(ctx, "DescribeLogStreams", account, region, group_name)
        order = params.get("orderBy") or "LogStreamName"
        prefix = params.get("logStreamNamePrefix")
        if prefix and order == "LastEventTime":
            raise invalid("Cannot order by LastEventTime with a logStreamNamePrefix.")
        group = self._group(account, region, group_name)
        self._enforce_retention(group)
        with self.app.db.read() as conn:
            streams = catalog.list_streams(conn, account, region, group_name, prefix)
        rows = []
        for s in streams:
            reader = self._reader(s)
            out: dict[str, Any] = {"logStreamName": s["name"], "creationTime": s["created_at"],
                                   "arn": stream_arn(region, account, group_name, s["name"]),
                                   "storedBytes": 0}
            first = reader.first_timestamp()
            if first is not None:
                out["firstEventTimestamp"] = first
                out["lastEventTimestamp"] = retention.latest(reader)
                out["lastIngestionTime"] = reader.last_ingestion()
            rows.append(out)
        descending = bool(params.get("descending"))
        if order == "LastEventTime":
            rows.sort(key=lambda r: (r.get("lastEventTimestamp", 0), r["logStreamName"]), reverse=descending)
        elif descending:
            rows.reverse()
        start = int((_untoken(params.get("nextToken")) or {}).get("index", 0))
        limit = _limit(params.get("limit"), 50)
        page = rows[start:start + limit]
        result: dict[str, Any] = {"logStreams": page}
        if start + limit < len(rows):
            result["nextToken"] = _token({"index": start + limit})
        return result

    # ---------------------------------------------------------------------------------------- events
    @blocking
    def put_log_events(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, group_name = self._group_ref(ctx, params)
        name = params["logStreamName"]
        self._authorize(ctx, "PutLogEvents", account, region, group_name, name)
        events = params.get("logEvents") or []
        if not events:
            raise invalid("1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: "
                          "Member must have length greater than or equal to 1")
        if len(events) > MAX_EVENTS:
            raise invalid(f"The batch of log events exceeds the maximum of {MAX_EVENTS} events.")
        size = sum(len(e["message"].encode()) + EVENT_OVERHEAD for e in events)
        if size > MAX_BATCH_BYTES:
            raise invalid("The batch of log events exceeds the maximum size of 1,048,576 bytes.")
        stamps = [int(e["timestamp"]) for e in events]
        if any(b < a for a, b in zip(stamps, stamps[1:], strict=False)):
            raise invalid("Log events in a single PutLogEvents request must be in chronological order.")
        if stamps[-1] - stamps[0] > DAY_MS:
            raise invalid("The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
        group = self._group(account, region, group_name)
        stream = self._stream(account, region, group_name, name)
        now = now_ms()
        cutoff = max(self._cutoff(group), now - 14 * DAY_MS)
        accepted = []
        too_old = too_new = None
        for i, (ts, e) in enumerate(zip(stamps, events, strict=True)):
            if ts < cutoff:
                too_old = i
            elif ts > now + 2 * 3_600_000:
                too_new = i if too_new is None else too_new
            else:
                accepted.append((ts, e["message"]))
        data = self.data_dir / stream["path"]
        if accepted:
            with exclusive(data):
                StreamWriter(data).append_events(accepted, now)
        out: dict[str, Any] = {}
        rejected: dict[str, int] = {}
        if too_old is not None:
            rejected["tooOldLogEventEndIndex"] = too_old
        if too_new is not None:
            rejected["tooNewLogEventStartIndex"] = too_new
        if rejected:
            out["rejectedLogEventsInfo"] = rejected
        return out

    @blocking
    def get_log_events(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, group_name = self._group_ref(ctx, params)
        name = params["logStreamName"]
        self._authorize(ctx, "GetLogEvents", account, region, group_name, name)
        group = self._group(account, region, group_name)
        stream = self._stream(account, region, group_name, name)
        limit = _limit(params.get("limit"), MAX_EVENTS)
        start_time = max(int(params.get("startTime") or 0), self._cutoff(group))
        end_time = params.get("endTime")
        token = params.get("nextToken")
        forward = bool(params.get("startFromHead"))
        position: int | None = None
        if token:
            direction, _, pos = token.partition("/")
            if direction not in ("f", "b") or not pos.isdigit():
                raise invalid("The specified nextToken is invalid.")
            forward, position = direction == "f", int(pos)
        reader = self._reader(stream)

        def wanted(e: Event) -> bool:
            return e.timestamp >= start_time and (end_time is None or e.timestamp < end_time)

        events: list[Event] = []
        budget = MAX_RESPONSE_BYTES
        if forward:
            start = position or 0
            for e in reader.forward(start):
                if end_time is not None and e.timestamp >= end_time and _sorted_stream(reader):
                    break
                if not wanted(e):
                    continue
                budget -= len(e.message) + EVENT_OVERHEAD
                if budget < 0 or len(events) >= limit:
                    break
                events.append(e)
            fwd = events[-1].end if events else start
            back = events[0].position if events else start
        else:
            for e in reader.backward(position):
                if not wanted(e):
                    if e.timestamp < start_time and _sorted_stream(reader):
                        break
                    continue
                budget -= len(e.message) + EVENT_OVERHEAD
                if budget < 0 or len(events) >= limit:
                    break
                events.append(e)
            events.reverse()
            end = reader.end if position is None else position
            fwd = events[-1].end if events else end
            back = events[0].position if events else end
        return {"events": [_event_out(e) for e in events], "nextForwardToken": f"f/{fwd:056d}",
                "nextBackwardToken": f"b/{back:056d}"}

    @blocking
    def filter_log_events(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        account, region, group_name = self._group_ref(ctx, params)
        self._authorize(ctx, "FilterLogEvents", account, region, group_name)
        names = params.get("logStreamNames")
        prefix = params.get("logStreamNamePrefix")
        if names and prefix:
            raise invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters.")
        try:
            matcher = compile_pattern(params.get("filterPattern"))
        except PatternError as exc:
            raise invalid(str(exc)) from None
        group = self._group(account, region, group_name)
        with self.app.db.read() as conn:
            streams = catalog.list_streams(conn, account, region, group_name, prefix)
        if names:
            wanted_names = set(names)
            streams = [s for s in streams if s["name"] in wanted_names]
            if len(streams) != len(wanted_names):
                raise not_found("log stream")
        limit = _limit(params.get("limit"), MAX_EVENTS)
        start_time = max(int(params.get("startTime") or 0), self._cutoff(group))
        end_time = params.get("endTime")
        positions: dict[str, int] = {k: int(v) for k, v in ((_untoken(params.get("nextToken")) or {}).get("p") or {}).items()}

        fast = prefilter(params.get("filterPattern"))

        def matches(index: int, stream: dict[str, Any]) -> Iterator[tuple[int, int, int, Event]]:
            reader = self._reader(stream)
            for e in reader.search(positions.get(stream["name"], 0), matcher, fast, start_time, end_time):
                yield (e.timestamp, index, e.position, e)

        iterators = [matches(i, s) for i, s in enumerate(streams)]
        out_events: list[dict[str, Any]] = []
        budget = MAX_RESPONSE_BYTES
        next_positions = dict(positions)
        exhausted = True
        for ts, index, _, e in heapq.merge(*iterators):
            budget -= len(e.message) + EVENT_OVERHEAD
            if len(out_events) >= limit or budget < 0:
                exhausted = False
                break
            stream_name = streams[index]["name"]
            out_events.append({"logStreamName": stream_name, "timestamp": ts,
                               "message": e.message.decode("utf-8", "replace"), "ingestionTime": e.ingestion,
                               "eventId": f"{ts:020d}{index:06d}{e.position:020d}"})
            next_positions[stream_name] = e.end
        result: dict[str, Any] = {"events": out_events,
                                  "searchedLogStreams": [{"logStreamName": s["name"], "searchedCompletely": exhausted}
                                                         for s in streams]}
        if not exhausted:
            result["nextToken"] = _token({"p": next_positions})
        return result


def _check_group_name(name: str) -> None:
    if not re.fullmatch(r"[\.\-_/#A-Za-z0-9]{1,512}", name) or name.startswith("aws/"):
        raise invalid(f"Invalid log group name {name!r}: 1 to 512 characters of a-z, A-Z, 0-9, '_', '-', '/', "
                      "'.' and '#'.")


def _limit(value: Any, default: int) -> int:
    return default if value is None else int(value)


def _sorted_stream(reader: StreamReader) -> bool:
    stamps = [r[2] for r in reader.records]
    return all(b >= a for a, b in zip(stamps, stamps[1:], strict=False))
