"""Asynchronous (Event) invocations: accepted into ``lambda_event_queue`` before Invoke answers
202, then run by a server's queue worker. A function error is retried twice (after
STRATUM_LAMBDA_RETRY_DELAYS seconds, default "60,120", as Lambda waits about one then two
minutes); then the event goes to the function's dead-letter SQS queue (DeadLetterConfig), or is
dropped with a log line without one. The server running an event holds a lease on it (``--lease-seconds``, renewed
every third of it); when the server dies, the lease expires and any server runs the event again.
SQLite's single server releases its own leases when it starts again."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, update

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.services.lambda_.tables import lambda_event_queue as queue_t

if TYPE_CHECKING:
    from stratum.functions.runtime import Runtime

log = logging.getLogger("stratum.functions")
MAX_ATTEMPTS = 3  # the first try and two retries
WORKERS = 4


def _now_ms() -> int:
    return int(time.time() * 1000)


def retry_delays() -> list[float]:
    raw = os.environ.get("STRATUM_LAMBDA_RETRY_DELAYS", "60,120")
    return [float(x) for x in raw.split(",") if x.strip()] or [60.0, 120.0]


def enqueue(conn: Connection, request_id: str, account: str, region: str, name: str, qualifier: str | None,
            payload: bytes) -> None:
    conn.execute(insert(queue_t).values(
        request_id=request_id, account_id=account, region=region, function_name=name, qualifier=qualifier,
        payload=payload, attempts=0, not_before=_now_ms(), claimed_until=0, created_at=datetime.now(UTC)))


class EventQueue:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.db = runtime.app.db
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self.lease_ms = int(float(runtime.app.settings.lease_seconds) * 1000)
        self._renewed = 0.0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.db.is_sqlite:  # one server per SQLite database: its leases are its own
            with self.db.begin() as conn:
                conn.execute(update(queue_t).values(claimed_until=0))
        self._stop.clear()
        self._pool = concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="stratum-lambda-event")
        self._thread = threading.Thread(target=self._loop, name="stratum-lambda-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                for row in self._claim():
                    assert self._pool is not None
                    self._pool.submit(self._handle, row)
                self._renew()
            except Exception:
                log.exception("reading the Lambda event queue failed")
            self._wake.wait(0.5)  # local Event invocations wake it at once
            self._wake.clear()

    def _renew(self) -> None:
        """Extend the leases of the events running here (every third of a lease)."""
        if time.monotonic() - self._renewed < self.lease_ms / 3000:
            return
        self._renewed = time.monotonic()
        with self._lock:
            running = list(self._running)
        if running:
            with self.db.begin() as conn:
                conn.execute(update(queue_t).where(queue_t.c.request_id.in_(running))
                             .values(claimed_until=_now_ms() + self.lease_ms))

    def _claim(self) -> list[dict[str, Any]]:
        with self._lock:
            free = WORKERS - len(self._running)
        if free <= 0:
            return []
        now = _now_ms()
        claimed = []
        with self.db.begin() as conn:
            rows = conn.execute(select(queue_t).where((queue_t.c.not_before <= now) & (queue_t.c.claimed_until < now))
                                .order_by(queue_t.c.not_before).limit(free)).mappings().all()
            for row in rows:
                done = conn.execute(update(queue_t).where(
                    (queue_t.c.request_id == row["request_id"]) & (queue_t.c.claimed_until == row["claimed_until"]))
                    .values(claimed_until=now + self.lease_ms))
                if done.rowcount == 1:
                    claimed.append(dict(row))
        with self._lock:
            self._running.update(row["request_id"] for row in claimed)
        return claimed

    def _handle(self, row: dict[str, Any]) -> None:
        try:
            self._attempt(row)
        except Exception:
            log.exception("Lambda event invocation %s failed", row["request_id"])
        finally:
            with self._lock:
                self._running.discard(row["request_id"])
            self._wake.set()

    def _attempt(self, row: dict[str, Any]) -> None:
        from stratum.functions import resolve_target
        from stratum.services.lambda_.names import FunctionRef

        ref = FunctionRef(row["account_id"], row["region"], row["function_name"], row["qualifier"])
        try:
            target, _policy = resolve_target(self.runtime.app, ref)
            result = self.runtime.run(target, bytes(row["payload"]), request_id=row["request_id"])
            error = result.payload.decode("utf-8", "replace") if result.function_error else None
        except ServiceError as exc:  # the function is gone, or its role cannot be assumed
            target, error = None, f"{exc.code}: {exc.message}"
        attempts = int(row["attempts"]) + 1
        with self.db.begin() as conn:
            if self._stop.is_set():  # the server is stopping (its environments were killed): not an attempt
                conn.execute(update(queue_t).where(queue_t.c.request_id == row["request_id"]).values(claimed_until=0))
                return
            if error is None or attempts >= MAX_ATTEMPTS or target is None:
                conn.execute(delete(queue_t).where(queue_t.c.request_id == row["request_id"]))
                if error is not None:
                    refused = self._dead_letter(conn, target, row, error)
                    if refused is not None:
                        log.warning("Lambda event %s for %s dropped after %d attempts: %s%s", row["request_id"],
                                    ref.qualified_arn, attempts, error[:500], refused)
                return
            delays = retry_delays()
            delay = delays[min(attempts - 1, len(delays) - 1)]
            conn.execute(update(queue_t).where(queue_t.c.request_id == row["request_id"]).values(
                attempts=attempts, not_before=_now_ms() + int(delay * 1000), claimed_until=0, last_error=error[:4000]))

    def _dead_letter(self, conn: Connection, target: Any, row: dict[str, Any], error: str) -> str | None:
        """An event given up on goes to the function's DeadLetterConfig SQS queue, sent as the
        function's execution role (which needs sqs:SendMessage on it), with the attributes Lambda
        documents; returns why it could not be (None when it was sent)."""
        arn = ((target.config if target is not None else {}).get("DeadLetterConfig") or {}).get("TargetArn")
        if not arn:
            return ""
        from stratum.functions.access import role_identity
        from stratum.server.context import RequestContext
        from stratum.services.sqs import queues, store

        ref = queues.parse_arn(arn)
        if ref is None:
            return f" (dead-letter target {arn} is not an SQS queue)"
        try:
            identity = role_identity(self.runtime.app, str(target.config.get("Role")), target.name)
            ctx = RequestContext(self.runtime.app, row["request_id"], "sqs", "SendMessage", ref.region, identity,
                                 HttpRequest("POST", "/", "", {}))
            queue = store.require_queue(conn, ref, lock=True)
            ctx.authorize("sqs:SendMessage", ref.arn, resource_account=ref.account_id,
                          resource_policy=queue["attributes"].get("Policy") or None)
        except ServiceError as exc:
            return f" (not sent to the dead-letter queue {arn}: {exc.code}: {exc.message})"
        try:
            code = str(json.loads(error).get("errorType") or "Unhandled")
        except (ValueError, AttributeError):
            code = "Unhandled"
        attributes = {"RequestID": {"DataType": "String", "StringValue": row["request_id"]},
                      "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                      "ErrorMessage": {"DataType": "String", "StringValue": (error[:1024] or code)}}
        store.send(conn, ref, queue, bytes(row["payload"]).decode("utf-8", "replace"), delay=0, attributes=attributes,
                   system={}, sender=identity.principal_id.split(":")[0])
        return None
