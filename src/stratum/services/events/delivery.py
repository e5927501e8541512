"""Delivery of events to rule targets, at least once, through an outbox.

``accept`` is how an event enters a bus, inside the caller's transaction: it appends the event to
the bus's log and writes one pending delivery per target of every enabled rule whose pattern
matches, so an event is never accepted without its deliveries, nor the reverse. The events
SageMaker and CloudWatch write into their own outbox (``sagemaker_registry_events``) are moved onto
their account's default bus the same way, each in one transaction with its ``dispatched_at`` stamp.
Scheduled rules fire from the same loop, and replays of archives run
there (``run_replays``); ``accept`` also writes the event into the bus's archives (see archives).

The ``Deliverer`` (one per server, any number of servers on one database) takes a lease on a due
delivery (a conditional update only one server can win), hands it to its target kind and stamps it
delivered, or schedules the next attempt with exponential backoff, or, when the target's
RetryPolicy (MaximumRetryAttempts, default 185; MaximumEventAgeInSeconds, default 86400) is spent
or the error is one EventBridge does not retry, marks it failed with the error and the dead-letter
queue it was meant for, and sends the event to that SQS queue in the same transaction (see
queue_targets; a queue that is missing or whose policy refuses is noted in the failed row).
A delivery whose server died is taken over when its lease expires (at once by a server that
knows the holder is gone: a restart on the same machine, as with claims); targets that are not
transactional with the stamp are idempotent (a pipeline start carries the delivery id as its
ClientRequestToken), so a takeover does not start a second execution.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum.services.events import archives, buses, patterns, queue_targets, rules, schedules
from stratum.services.events.buses import DEFAULT_BUS, BusRef
from stratum.services.events.tables import events_deliveries
from stratum.services.events.targets import Job, TargetError, kind_of
from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

log = logging.getLogger("stratum.events")

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DEFAULT_MAX_ATTEMPTS = 185
DEFAULT_MAX_AGE_SECONDS = 86400
LEASE = timedelta(seconds=120)
# Delivered rows are kept a day (to see what a rule did), failed ones as long as SQS would keep a
# dead-letter message at most (14 days).
KEEP_DELIVERED = timedelta(days=1)
KEEP_FAILED = timedelta(days=14)
MAX_BACKOFF_SECONDS = 300.0


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=4096)
def compiled(pattern: str) -> patterns.Node:
    return patterns.compile_pattern(pattern)


# ------------------------------------------------------------------------------------- accepting
def envelope(event_id: str, *, source_account: str, region: str, source: str, detail_type: str,
             detail: dict[str, Any], resources: list[str], time: datetime) -> dict[str, Any]:
    return {"version": "0", "id": event_id, "detail-type": detail_type, "source": source,
            "account": source_account, "time": iso(time), "region": region, "resources": list(resources),
            "detail": detail}


def accept(conn: Connection, ref: BusRef, event: dict[str, Any], *, stamp: datetime | None = None) -> str:
    """Put ``event`` (an envelope; its id is replaced) on a bus with its deliveries; its new id."""
    stamp = stamp or now()
    moment = _parse_time(event.get("time")) or stamp
    event_id = buses.record_event(conn, ref, source_account=event["account"], source=event["source"],
                                  detail_type=event["detail-type"], detail=json.dumps(event["detail"]),
                                  resources=event.get("resources") or [], time=moment)
    accepted = {**event, "id": event_id}
    fan_out(conn, ref, accepted, stamp)
    archives.archive_event(conn, ref, accepted, moment, stamp)
    return event_id


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def rule_index(event_patterns: tuple[str, ...]) -> patterns.RuleIndex:
    """The index of a bus's enabled rules, kept while they stay the same."""
    nodes = []
    for text in event_patterns:
        try:
            nodes.append(compiled(text))
        except patterns.PatternError:
            # Stored patterns were validated; one that no longer compiles matches nothing.
            nodes.append(patterns.compile_pattern({"source": [{"prefix": "\u0000never"}]}))
    return patterns.RuleIndex(nodes)


def fan_out(conn: Connection, ref: BusRef, event: dict[str, Any], stamp: datetime,
            only: set[str] | None = None) -> int:
    """Pending deliveries of ``event`` to the targets of the enabled rules of ``ref`` it matches
    (of those whose ARN is in ``only``, when given: a replay's FilterArns)."""
    enabled = [r for r in rules.enabled_pattern_rules(conn, ref) if only is None or r.arn in only]
    count = 0
    for i in rule_index(tuple(rule.event_pattern for rule in enabled)).match(event):
        rule = enabled[i]
        count += queue(conn, rules.RuleRef(ref, rule.name), rule.arn, rule.role_arn, event, stamp)
    return count


def queue(conn: Connection, ref: rules.RuleRef, rule_arn: str, role_arn: str | None, event: dict[str, Any],
          stamp: datetime) -> int:
    targets = rules.targets_of(conn, ref)
    for target in targets:
        conn.execute(insert(events_deliveries).values(
            delivery_id=uuid.uuid4().hex, account_id=ref.bus.account_id, region=ref.bus.region,
            bus_name=ref.bus.name, rule_name=ref.name, rule_arn=rule_arn, role_arn=role_arn,
            target_id=target["Id"], target=target, event=event, status=PENDING, attempts=0, accepted_at=stamp,
            next_attempt_at=stamp))
    return len(targets)


# -------------------------------------------------------------------------------------- retrying
@dataclass(frozen=True)
class Decision:
    retry_at: datetime | None  # None: give up
    reason: str


# Why a delivery was given up -> the EXHAUSTED_RETRY_CONDITION of its dead-letter message.
EXHAUSTED = {"retry attempts exhausted": "MaximumRetryAttempts",
             "maximum event age exceeded": "MaximumEventAgeInSeconds"}


def after_failure(target: dict[str, Any], attempts: int, accepted_at: datetime, at: datetime, error: TargetError,
                  base_seconds: float) -> Decision:
    """What follows a failed attempt (``attempts`` made so far), under the target's RetryPolicy."""
    if not error.retryable:
        return Decision(None, "error is not retried")
    policy = target.get("RetryPolicy") or {}
    max_retries = policy.get("MaximumRetryAttempts", DEFAULT_MAX_ATTEMPTS)
    max_age = policy.get("MaximumEventAgeInSeconds", DEFAULT_MAX_AGE_SECONDS)
    if attempts > max_retries:
        return Decision(None, "retry attempts exhausted")
    delay = min(base_seconds * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
    retry_at = at + timedelta(seconds=delay)
    if (retry_at - accepted_at).total_seconds() > max_age:
        return Decision(None, "maximum event age exceeded")
    return Decision(retry_at, "retrying")


# ----------------------------------------------------------------------------------- the service
class Deliverer:
    """The background service: outbox rows onto buses, scheduled rules, due deliveries."""

    name = "events-delivery"

    def __init__(self, app: AppState) -> None:
        self.app = app
        self.owner = app.claims.server_id
        # How often the loop looks for work when nobody wakes it (PutEvents does).
        self.poll = float(os.environ.get("STRATUM_EVENTS_POLL_SECONDS", "0.5"))
        # First retry delay, doubling per attempt up to 5 minutes.
        self.retry_base = float(os.environ.get("STRATUM_EVENTS_RETRY_BASE_SECONDS", "1"))
        # Archived events a replay sends per pass of the loop (so a replay can be cancelled midway).
        self.replay_batch = int(os.environ.get("STRATUM_EVENTS_REPLAY_BATCH", "100"))
        # Seconds in a minute of rate(...) schedules: 60, shorter for tests.
        self.minute_seconds = float(os.environ.get("STRATUM_EVENTS_SCHEDULE_MINUTE_SECONDS", "60"))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="events-target")
        self._running: dict[int, tuple[str, str]] = {}  # deliveries under way: seq -> (rule, target id)
        self._lock = threading.Lock()
        self._next_cleanup = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)
        # Deliveries leased but not started are handed back at once, not after the lease.
        try:
            self._release(self.owner)
        except Exception:
            log.exception("releasing event delivery leases failed")

    def _release(self, owner: str) -> int:
        with self.app.db.begin() as conn:
            return conn.execute(update(events_deliveries).where(
                (events_deliveries.c.lease_owner == owner) & (events_deliveries.c.status == PENDING))
                .values(lease_owner=None, lease_until=None)).rowcount

    def release_dead(self) -> int:
        """Take back at once the leases of servers known to be gone (a restart after kill -9 on
        this machine), as claims do; other leases run out."""
        with self.app.db.read() as conn:
            owners = [r.lease_owner for r in conn.execute(select(events_deliveries.c.lease_owner).where(
                (events_deliveries.c.status == PENDING) & events_deliveries.c.lease_owner.is_not(None)).distinct())]
        return sum(self._release(o) for o in owners if self.app.claims.is_dead(o))

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        try:
            self.release_dead()
        except Exception:
            log.exception("taking back event delivery leases failed")
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            if self._stop.is_set():
                return
            if time.monotonic() >= self._next_cleanup:
                self._next_cleanup = time.monotonic() + 3600
                try:
                    self.forget_finished()
                except Exception:
                    log.exception("removing finished event deliveries failed")
            for step in (self.pump_outbox, self.fire_schedules, self.run_replays, self.deliver_due):
                try:
                    step()
                except Exception:
                    log.exception("event delivery step %s failed", step.__name__)

    def forget_finished(self) -> int:
        at = now()
        with self.app.db.begin() as conn:
            return conn.execute(delete(events_deliveries).where(
                ((events_deliveries.c.status == DELIVERED) & (events_deliveries.c.finished_at < at - KEEP_DELIVERED))
                | ((events_deliveries.c.status == FAILED) & (events_deliveries.c.finished_at < at - KEEP_FAILED))
            )).rowcount

    # -------------------------------------------------------------------------------------- outbox
    def pump_outbox(self) -> int:
        """Move the state-change events services wrote in their own transactions onto buses."""
        moved = 0
        with self.app.db.read() as conn:
            pending = list(conn.execute(select(outbox_t).where(outbox_t.c.dispatched_at.is_(None))
                                        .order_by(outbox_t.c.event_id).limit(100)))
        for row in pending:
            stamp = now()
            with self.app.db.begin() as conn:
                taken = conn.execute(update(outbox_t).where(
                    (outbox_t.c.event_id == row.event_id) & outbox_t.c.dispatched_at.is_(None))
                    .values(dispatched_at=stamp)).rowcount
                if taken != 1:
                    continue  # another server moved it
                ref = BusRef(row.account_id, row.region, DEFAULT_BUS)
                accept(conn, ref, envelope("", source_account=row.account_id, region=row.region,
                                           source=row.source, detail_type=row.detail_type,
                                           detail=dict(row.detail or {}), resources=list(row.resources or []),
                                           time=row.created_at), stamp=stamp)
            moved += 1
        return moved

    # ----------------------------------------------------------------------------------- schedules
    def fire_schedules(self) -> int:
        fired = 0
        at = now()
        with self.app.db.read() as conn:
            due = rules.due_schedules(conn, at)
        for rule in due:
            try:
                schedule = schedules.parse(rule.schedule_expression)
            except schedules.ScheduleError:
                continue
            next_fire = schedule.next_after(rule.next_fire_at, self.minute_seconds)
            if next_fire is not None and next_fire <= at:  # missed occurrences (server down) are skipped
                next_fire = schedule.next_after(at, self.minute_seconds)
            with self.app.db.begin() as conn:
                if not rules.advance_schedule(conn, rule, rule.next_fire_at, next_fire):
                    continue
                ref = rules.RuleRef(BusRef(rule.account_id, rule.region, rule.bus_name), rule.name)
                event = envelope(str(uuid.uuid4()), source_account=rule.account_id, region=rule.region,
                                 source="aws.events", detail_type="Scheduled Event", detail={},
                                 resources=[rule.arn], time=rule.next_fire_at)
                queue(conn, ref, rule.arn, rule.role_arn, event, at)
            fired += 1
        return fired

    # ------------------------------------------------------------------------------------- replays
    def run_replays(self) -> int:
        """Advance every active replay by one batch: STARTING becomes RUNNING, CANCELLING becomes
        CANCELLED, and a replay with nothing left in its window COMPLETED. Each batch is one
        transaction (its deliveries with the cursor), taken under the replay's row lock and only if
        the cursor is still where it was read, so two servers never replay the same events."""
        with self.app.db.read() as conn:
            active = archives.active_replays(conn)
        sent = 0
        for seen in active:
            ref = archives.ReplayRef(seen["account_id"], seen["region"], seen["name"])
            stamp = now()
            with self.app.db.begin() as conn:
                replay = archives.get_replay(conn, ref, lock=True)
                if replay is None or replay["state"] != seen["state"] or replay["cursor"] != seen["cursor"]:
                    continue  # another server advanced it
                if replay["state"] == archives.CANCELLING:
                    archives.update_replay(conn, ref, state=archives.CANCELLED, replay_end_time=stamp,
                                           state_reason="Replay was cancelled.")
                    continue
                batch = archives.to_replay(conn, replay, self.replay_batch)
                if not batch:
                    archives.update_replay(conn, ref, state=archives.COMPLETED, replay_end_time=stamp,
                                           state_reason=None)
                    continue
                bus = buses.resolve(ref.account_id, ref.region, replay["destination"]["Arn"])
                only = set(replay["destination"].get("FilterArns") or []) or None
                for row in batch:
                    # A replayed event is a new event (its own id) that names its replay.
                    event = {**row.event, "id": str(uuid.uuid4()), "replay-name": ref.name}
                    sent += fan_out(conn, bus, event, stamp, only)
                last = max(row.time for row in batch)
                if replay["last_replayed_time"] is not None:
                    last = max(last, replay["last_replayed_time"])
                archives.update_replay(conn, ref, state=archives.RUNNING, cursor=batch[-1].seq,
                                       last_replayed_time=last)
        return sent

    # ---------------------------------------------------------------------------------- deliveries
    def deliver_due(self) -> int:
        at = now()
        with self.app.db.read() as conn:
            due = list(conn.execute(select(events_deliveries).where(
                (events_deliveries.c.status == PENDING) & (events_deliveries.c.next_attempt_at <= at)
                & (events_deliveries.c.lease_until.is_(None) | (events_deliveries.c.lease_until < at)))
                .order_by(events_deliveries.c.seq).limit(50)))
        started = 0
        with self._lock:
            busy = set(self._running.values())
        for row in due:
            # One delivery at a time per rule target, oldest first: a target sees a rule's events in
            # the order they arrived (a delivery waiting for its retry does not hold the next back).
            key = (row.rule_arn, row.target_id)
            if key in busy:
                continue
            busy.add(key)
            if not self._lease(row, at):
                continue  # another server has it; the next ones of this target wait for a later pass
            with self._lock:
                self._running[row.seq] = key
            self._pool.submit(self._deliver, row)
            started += 1
        return started

    def _lease(self, row: Any, at: datetime) -> bool:
        with self.app.db.begin() as conn:
            return conn.execute(update(events_deliveries).where(
                (events_deliveries.c.seq == row.seq) & (events_deliveries.c.status == PENDING)
                & (events_deliveries.c.lease_until.is_(None) | (events_deliveries.c.lease_until < at)))
                .values(lease_owner=self.owner, lease_until=at + LEASE)).rowcount == 1

    def _finish(self, conn: Connection, seq: int, **values: Any) -> None:
        done = conn.execute(update(events_deliveries).where(
            (events_deliveries.c.seq == seq) & (events_deliveries.c.lease_owner == self.owner)
            & (events_deliveries.c.status == PENDING)).values(lease_owner=None, lease_until=None, **values))
        if done.rowcount != 1:
            raise LeaseLost(seq)

    def _deliver(self, row: Any) -> None:
        try:
            self._attempt(row)
        except LeaseLost:
            log.warning("delivery %s was taken over by another server", row.delivery_id)
        except Exception:
            log.exception("delivery %s failed unexpectedly", row.delivery_id)
        finally:
            with self._lock:
                self._running.pop(row.seq, None)

    def _attempt(self, row: Any) -> None:
        attempts = row.attempts + 1

        def complete(conn: Connection, result: dict[str, Any] | None) -> None:
            self._finish(conn, row.seq, status=DELIVERED, attempts=attempts, result=result, finished_at=now())
            job.completed = True

        job = Job(seq=row.seq, delivery_id=row.delivery_id, account_id=row.account_id, region=row.region,
                  rule_name=row.rule_name, rule_arn=row.rule_arn, role_arn=row.role_arn, target=dict(row.target),
                  event=dict(row.event), accepted_at=row.accepted_at, complete=complete)
        kind = kind_of(job.target["Arn"])
        try:
            if kind is None:
                raise TargetError("UnsupportedTarget", f"Stratum cannot deliver to {job.target['Arn']}.", False)
            result = kind.deliver(self.app, job)
        except TargetError as error:
            self._failed(row, attempts, error)
            return
        except LeaseLost:
            raise
        except Exception as exc:  # a fault of Stratum's own: retried like a target's server error
            log.exception("delivery %s to %s failed", row.delivery_id, job.target.get("Arn"))
            self._failed(row, attempts, TargetError("InternalFailure", f"{type(exc).__name__}: {exc}", True))
            return
        if not job.completed:
            with self.app.db.begin() as conn:
                complete(conn, result)
        self.wake()  # a bus target may have queued deliveries of its own

    def _failed(self, row: Any, attempts: int, error: TargetError) -> None:
        at = now()
        decision = after_failure(dict(row.target), attempts, row.accepted_at, at, error, self.retry_base)
        message = f"{error.code}: {error.message}"
        with self.app.db.begin() as conn:
            if decision.retry_at is not None:
                self._finish(conn, row.seq, attempts=attempts, next_attempt_at=decision.retry_at, last_error=message)
                return
            dead_letter = (row.target.get("DeadLetterConfig") or {}).get("Arn")
            last_error = f"{message} ({decision.reason})"
            if dead_letter:
                refused = queue_targets.dead_letter(
                    conn, dead_letter, event=dict(row.event), rule_arn=row.rule_arn, target_arn=row.target.get("Arn", ""),
                    error_code=error.code, error_message=error.message, condition=EXHAUSTED.get(decision.reason, ""),
                    attempts=attempts)
                if refused:
                    last_error += f"; not sent to the dead-letter queue: {refused}"
            self._finish(conn, row.seq, status=FAILED, attempts=attempts, last_error=last_error,
                         dead_letter_arn=dead_letter, finished_at=at)
        log.warning("delivery %s of rule %s to %s failed: %s (%s)", row.delivery_id, row.rule_arn,
                    row.target.get("Arn"), message, decision.reason)


class LeaseLost(Exception):
    pass
