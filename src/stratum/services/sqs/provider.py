"""The SQS API (JSON protocol, as current SDKs speak it): queues, messages, batches, queue policies
and tags. Every operation is authorized as ``sqs:<Action>`` on the queue's ARN with the queue's
policy, so another account (or ``events.amazonaws.com`` for a rule's dead-letter queue) reaches a
queue only where its policy lets it."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from stratum.server.context import Provider, RequestContext, blocking
from stratum.services.sqs import queues, store
from stratum.services.sqs.queues import QueueRef, error, invalid_parameter

MAX_BATCH = 10
MAX_ATTRIBUTES = 10
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTRIBUTE_NAME = re.compile(r"(?!aws\.|amazon\.)(?!.*\.\.)[A-Za-z0-9_.-]{1,256}(?<!\.)", re.I)
_DATA_TYPE = re.compile(r"(String|Number|Binary)(\.[A-Za-z0-9_.-]{1,249})?")
# XML's characters: what a message body may hold.
_INVALID_BODY = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
SYSTEM_ATTRIBUTES = ("SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp",
                     "MessageGroupId", "MessageDeduplicationId", "SequenceNumber", "AWSTraceHeader")
LONG_POLL_STEP = 0.05


class SqsProvider(Provider):
    service = "sqs"

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.app.db.begin() as conn:
            yield conn

    def _endpoint(self) -> str:
        return str(self.app.settings.endpoint_url)

    def _ref(self, ctx: RequestContext, params: dict[str, Any]) -> QueueRef:
        return queues.parse_url(params["QueueUrl"], ctx.region)

    def _queue(self, ctx: RequestContext, conn: Connection, action: str, ref: QueueRef, *,
               lock: bool = False) -> dict[str, Any]:
        """The queue, authorized for ``action`` with its policy (a missing one is authorized first,
        so a caller without the permission learns nothing)."""
        queue = store.get_queue(conn, ref, lock=lock)
        policy = (queue or {}).get("attributes", {}).get("Policy") or None
        ctx.authorize("sqs:" + action, ref.arn, resource_account=ref.account_id, resource_policy=policy)
        if queue is None:
            raise queues.no_such_queue()
        return queue

    # ------------------------------------------------------------------------------------- queues
    def create_queue(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["QueueName"]
        queues.check_name(name)
        ref = QueueRef(ctx.account_id, ctx.region, name)
        tags = dict(params.get("tags") or {})
        ctx.authorize("sqs:CreateQueue", ref.arn)
        requested = dict(params.get("Attributes") or {})
        if requested.get("FifoQueue", "false").lower() == "true" and not ref.fifo:
            raise invalid_parameter("The name of a FIFO queue can only include alphanumeric characters, hyphens, or "
                                    "underscores, must end with .fifo suffix and be 1 to 80 in length.")
        attributes = {**queues.defaults(ref), **queues.checked(requested, ref, creating=True)}
        self._check_redrive(ref, attributes)
        with self._write() as conn:
            existing = store.get_queue(conn, ref, lock=True)
            if existing is not None:
                if any(existing["attributes"].get(k) != v for k, v in queues.checked(requested, ref, creating=True)
                       .items()):
                    raise error("QueueNameExists", "QueueAlreadyExists",
                                "A queue already exists with the same name and a different value for attribute(s) "
                                + ", ".join(sorted(requested)))
            else:
                store.create_queue(conn, ref, attributes, tags)
        return {"QueueUrl": ref.url(self._endpoint())}

    def _check_redrive(self, ref: QueueRef, attributes: dict[str, str]) -> None:
        target = queues.redrive_target(attributes)
        if target is None:
            return
        if target[0].account_id != ref.account_id or target[0].fifo != ref.fifo:
            raise queues.invalid_attribute_value(
                "Value for parameter RedrivePolicy is invalid. Reason: the dead-letter queue must be in the same "
                "account and of the same type (standard or FIFO) as the source queue.")
        with self.app.db.read() as conn:
            if store.get_queue(conn, target[0]) is None:
                raise queues.invalid_attribute_value(
                    f"Value {attributes['RedrivePolicy']} for parameter RedrivePolicy is invalid. Reason: Dead letter "
                    "target does not exist.")

    def get_queue_url(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = QueueRef(params.get("QueueOwnerAWSAccountId") or ctx.account_id, ctx.region, params["QueueName"])
        with self.app.db.read() as conn:
            self._queue(ctx, conn, "GetQueueUrl", ref)
        return {"QueueUrl": ref.url(self._endpoint())}

    def list_queues(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("sqs:ListQueues", "*")
        with self.app.db.read() as conn:
            names = store.list_queues(conn, ctx.account_id, ctx.region, params.get("QueueNamePrefix"))
        start = int(params["NextToken"]) if str(params.get("NextToken") or "").isdigit() else 0
        limit = params.get("MaxResults")
        if limit is not None and not 1 <= int(limit) <= 1000:
            raise invalid_parameter("Value for parameter MaxResults is invalid. Reason: must be between 1 and 1000.")
        chunk = names[start:start + int(limit)] if limit else names[:1000]
        out: dict[str, Any] = {}
        if chunk:
            out["QueueUrls"] = [QueueRef(ctx.account_id, ctx.region, n).url(self._endpoint()) for n in chunk]
        if limit and start + int(limit) < len(names):
            out["NextToken"] = str(start + int(limit))
        return out

    def delete_queue(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            self._queue(ctx, conn, "DeleteQueue", ref, lock=True)
            store.delete_queue(conn, ref)
        return {}

    def get_queue_attributes(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        wanted = list(params.get("AttributeNames") or [])
        with self.app.db.read() as conn:
            queue = self._queue(ctx, conn, "GetQueueAttributes", ref)
            counts = store.counts(conn, ref)
        everything = {**queue["attributes"], **{k: str(v) for k, v in counts.items()},
                      "CreatedTimestamp": str(int(queue["created_at"].timestamp())),
                      "LastModifiedTimestamp": str(int(queue["last_modified_at"].timestamp())),
                      "QueueArn": ref.arn}
        everything = {k: v for k, v in everything.items() if v != ""}
        if "All" in wanted:
            return {"Attributes": everything}
        unknown = [n for n in wanted if n not in everything and n not in queues.NUMERIC and n not in queues.OTHER
                   and n not in queues.FIFO_ONLY and n != "FifoQueue"]
        if unknown:
            raise error("InvalidAttributeName", "InvalidAttributeName", f"Unknown Attribute {unknown[0]}.")
        picked = {n: everything[n] for n in wanted if n in everything}
        return {"Attributes": picked} if picked else {}

    def set_queue_attributes(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        changes = queues.checked(dict(params.get("Attributes") or {}), ref, creating=False)
        self._check_redrive(ref, changes)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "SetQueueAttributes", ref, lock=True)
            attributes = {**queue["attributes"], **changes}
            store.update_queue(conn, ref, attributes=attributes, last_modified_at=datetime.now(UTC))
        return {}

    def purge_queue(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "PurgeQueue", ref, lock=True)
            if store.now_ms() - int(queue["purged_ms"] or 0) < 60_000:
                raise error("PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress",
                            f"Only one PurgeQueue operation on {ref.name} is allowed every 60 seconds.", 403)
            store.purge(conn, ref)
            store.update_queue(conn, ref, purged_ms=store.now_ms())
        return {}

    def list_dead_letter_source_queues(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self.app.db.read() as conn:
            self._queue(ctx, conn, "ListDeadLetterSourceQueues", ref)
            sources = store.dead_letter_sources(conn, ref)
        return {"queueUrls": [s.url(self._endpoint()) for s in sources]}

    # --------------------------------------------------------------------------------- permissions
    def add_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        label = params["Label"]
        principals = [f"arn:aws:iam::{a}:root" for a in params["AWSAccountIds"]]
        actions = [f"SQS:{a}" for a in params["Actions"]]
        statement = {"Sid": label, "Effect": "Allow",
                     "Principal": {"AWS": principals[0] if len(principals) == 1 else principals},
                     "Action": actions[0] if len(actions) == 1 else actions, "Resource": ref.arn}
        with self._write() as conn:
            queue = self._queue(ctx, conn, "AddPermission", ref, lock=True)
            policy = json.loads(queue["attributes"].get("Policy") or "null") or {
                "Version": "2012-10-17", "Id": f"{ref.arn}/SQSDefaultPolicy", "Statement": []}
            if any(s.get("Sid") == label for s in policy["Statement"]):
                raise invalid_parameter(f"Value {label} for parameter Label is invalid. Reason: Already exists.")
            policy["Statement"].append(statement)
            store.update_queue(conn, ref, attributes={**queue["attributes"], "Policy": json.dumps(policy)})
        return {}

    def remove_permission(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "RemovePermission", ref, lock=True)
            policy = json.loads(queue["attributes"].get("Policy") or "null") or {"Statement": []}
            kept = [s for s in policy["Statement"] if s.get("Sid") != params["Label"]]
            if len(kept) == len(policy["Statement"]):
                raise invalid_parameter(f"Value {params['Label']} for parameter Label is invalid. Reason: can't find "
                                        "label on existing policy.")
            value = json.dumps({**policy, "Statement": kept}) if kept else ""
            store.update_queue(conn, ref, attributes={**queue["attributes"], "Policy": value})
        return {}

    # ---------------------------------------------------------------------------------------- tags
    def tag_queue(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "TagQueue", ref, lock=True)
            tags = {**queue["tags"], **params["Tags"]}
            if len(tags) > 50:
                raise invalid_parameter("Too many tags: a queue can have at most 50.")
            store.update_queue(conn, ref, tags=tags)
        return {}

    def untag_queue(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "UntagQueue", ref, lock=True)
            store.update_queue(conn, ref, tags={k: v for k, v in queue["tags"].items() if k not in params["TagKeys"]})
        return {}

    def list_queue_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self.app.db.read() as conn:
            queue = self._queue(ctx, conn, "ListQueueTags", ref)
        return {"Tags": queue["tags"]} if queue["tags"] else {}

    # ------------------------------------------------------------------------------------ messages
    def _check_message(self, queue: dict[str, Any], ref: QueueRef, entry: dict[str, Any]) -> None:
        body = entry["MessageBody"]
        if not body:
            raise invalid_parameter("The request must contain the parameter MessageBody.")
        if _INVALID_BODY.search(body):
            raise error("InvalidMessageContents", "InvalidMessageContents",
                        "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | "
                        "#xE000 to #xFFFD | #x10000 to #x10FFFF")
        attributes = entry.get("MessageAttributes") or {}
        if len(attributes) > MAX_ATTRIBUTES:
            raise invalid_parameter(f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
                                    f"[{MAX_ATTRIBUTES}].")
        size = len(body.encode())
        for name, value in attributes.items():
            if not _ATTRIBUTE_NAME.fullmatch(name):
                raise invalid_parameter(f"Message (user) attribute name '{name}' is invalid.")
            if not _DATA_TYPE.fullmatch(str(value.get("DataType", ""))):
                raise invalid_parameter(f"The type of message (user) attribute '{name}' is invalid. You must use "
                                        "only the following supported type prefixes: Binary, Number, String.")
            data = value.get("BinaryValue") if value["DataType"].startswith("Binary") else value.get("StringValue")
            if data is None or data == "":
                raise invalid_parameter(f"Message (user) attribute '{name}' must contain a non-empty value of type "
                                        f"'{value['DataType'].split('.')[0]}'.")
            size += len(name.encode()) + len(value["DataType"].encode()) + len(
                data if isinstance(data, bytes | bytearray) else str(data).encode())
        limit = int(queue["attributes"].get("MaximumMessageSize", queues.NUMERIC["MaximumMessageSize"][2]))
        if size > limit:
            raise invalid_parameter(f"One or more parameters are invalid. Reason: Message must be shorter than {limit} "
                                    "bytes.")
        if ref.fifo:
            if not entry.get("MessageGroupId"):
                raise queues.error("MissingParameter", "MissingParameter",
                                   "The request must contain the parameter MessageGroupId.")
            if entry.get("DelaySeconds"):
                raise invalid_parameter(f"Value {entry['DelaySeconds']} for parameter DelaySeconds is invalid. Reason: "
                                        "The request include parameter that is not valid for this queue type.")
            if not entry.get("MessageDeduplicationId") and queue["attributes"].get("ContentBasedDeduplication") != "true":
                raise invalid_parameter("The queue should either have ContentBasedDeduplication enabled or "
                                        "MessageDeduplicationId provided explicitly")
        elif entry.get("MessageGroupId") or entry.get("MessageDeduplicationId"):
            name = "MessageGroupId" if entry.get("MessageGroupId") else "MessageDeduplicationId"
            raise invalid_parameter(f"Value {entry[name]} for parameter {name} is invalid. Reason: The request include "
                                    "parameter that is not valid for this queue type.")
        delay = entry.get("DelaySeconds")
        if delay is not None and not 0 <= int(delay) <= 900:
            raise invalid_parameter(f"Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be "
                                    ">= 0 and <= 900.")

    def _send(self, ctx: RequestContext, conn: Connection, ref: QueueRef, queue: dict[str, Any],
              entry: dict[str, Any]) -> dict[str, Any]:
        self._check_message(queue, ref, entry)
        delay = entry.get("DelaySeconds")
        delay = int(queue["attributes"].get("DelaySeconds", 0)) if delay is None else int(delay)
        system = {k: v.get("StringValue") for k, v in (entry.get("MessageSystemAttributes") or {}).items()}
        sender = ctx.identity.principal_id.split(":")[0]  # SQS shows the user or role id
        return store.send(conn, ref, queue, entry["MessageBody"], delay=delay,
                          attributes=dict(entry.get("MessageAttributes") or {}), system=system, sender=sender,
                          group_id=entry.get("MessageGroupId"), dedup_id=entry.get("MessageDeduplicationId"))

    def send_message(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "SendMessage", ref, lock=True)
            return self._send(ctx, conn, ref, queue, params)

    def _batch(self, entries: list[dict[str, Any]], each: Callable[[dict[str, Any]], dict[str, Any]]
               ) -> dict[str, Any]:
        if not entries:
            raise error("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest",
                        "There should be at least one SendMessageBatchRequestEntry in the request.")
        if len(entries) > MAX_BATCH:
            raise error("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                        f"Maximum number of entries per request are {MAX_BATCH}. You have sent {len(entries)}.")
        ids = [e["Id"] for e in entries]
        if len(set(ids)) != len(ids):
            raise error("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                        "Id " + next(i for i in ids if ids.count(i) > 1) + " repeated.")
        for entry_id in ids:
            if not _BATCH_ID.fullmatch(entry_id):
                raise error("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
                            "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It "
                            "can be at most 80 letters long.")
        successful, failed = [], []
        for entry in entries:
            try:
                successful.append({"Id": entry["Id"], **each(entry)})
            except Exception as exc:  # a refused entry fails alone, as SQS reports batches
                from stratum.protocol.errors import ServiceError

                if not isinstance(exc, ServiceError):
                    raise
                code = exc.headers.get("x-amzn-query-error", exc.code).split(";")[0]
                failed.append({"Id": entry["Id"], "SenderFault": exc.sender_fault, "Code": code,
                               "Message": exc.message})
        return {"Successful": successful, "Failed": failed}

    def send_message_batch(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            queue = self._queue(ctx, conn, "SendMessage", ref, lock=True)
            return self._batch(list(params["Entries"]), lambda e: self._send(ctx, conn, ref, queue, e))

    @blocking
    def receive_message(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        limit = int(params.get("MaxNumberOfMessages") or 1)
        if not 1 <= limit <= 10:
            raise invalid_parameter(f"Value {limit} for parameter MaxNumberOfMessages is invalid. Reason: Must be "
                                    "between 1 and 10, if provided.")
        with self.app.db.read() as conn:
            queue = self._queue(ctx, conn, "ReceiveMessage", ref)
        wait = params.get("WaitTimeSeconds")
        wait = int(queue["attributes"].get("ReceiveMessageWaitTimeSeconds", 0)) if wait is None else int(wait)
        if not 0 <= wait <= 20:
            raise invalid_parameter(f"Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and "
                                    "<= 20, if provided.")
        visibility = params.get("VisibilityTimeout")
        visibility = int(queue["attributes"].get("VisibilityTimeout", 30)) if visibility is None else int(visibility)
        deadline = time.monotonic() + wait
        while True:
            with self._write() as conn:
                queue = store.require_queue(conn, ref, lock=True)
                store.expire(conn, ref, int(queue["attributes"].get("MessageRetentionPeriod", 345600)))
                received = store.receive(conn, ref, queue, limit=limit, visibility=visibility)
            if received or time.monotonic() >= deadline:
                break
            time.sleep(LONG_POLL_STEP)  # long polling: look again until a message comes or the wait ends
        names = set(params.get("MessageSystemAttributeNames") or []) | set(params.get("AttributeNames") or [])
        wanted = list(params.get("MessageAttributeNames") or [])
        messages = [self._message_view(m, token, count, first, names, wanted) for m, token, count, first in received]
        return {"Messages": messages} if messages else {}

    def _message_view(self, message: Any, token: str, count: int, first: int, names: set[str],
                      wanted: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"MessageId": message.message_id,
                               "ReceiptHandle": store.receipt_handle(message.message_id, token),
                               "MD5OfBody": message.md5_body, "Body": message.body}
        system = {"SenderId": message.sender_id, "SentTimestamp": str(message.sent_ms),
                  "ApproximateReceiveCount": str(count), "ApproximateFirstReceiveTimestamp": str(first),
                  **({"MessageGroupId": message.group_id, "MessageDeduplicationId": message.dedup_id,
                      "SequenceNumber": str(message.sequence).zfill(20)} if message.group_id else {}),
                  **{k: v for k, v in (message.system_attributes or {}).items() if v is not None}}
        if "All" in names:
            out["Attributes"] = system
        elif names:
            picked = {n: system[n] for n in names if n in system}
            if picked:
                out["Attributes"] = picked
        attributes = store.decode_attributes(message.message_attributes or {})
        if wanted and attributes:
            def selected(name: str) -> bool:
                return any(w in ("All", ".*") or w == name or (w.endswith(".*") and name.startswith(w[:-1]))
                           for w in wanted)

            chosen = {k: v for k, v in attributes.items() if selected(k)}
            if chosen:
                out["MessageAttributes"] = chosen
                out["MD5OfMessageAttributes"] = message.md5_attributes
        return out

    def delete_message(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            self._queue(ctx, conn, "DeleteMessage", ref)
            store.delete_message(conn, ref, params["ReceiptHandle"])
        return {}

    def delete_message_batch(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            self._queue(ctx, conn, "DeleteMessage", ref)

            def one(entry: dict[str, Any]) -> dict[str, Any]:
                store.delete_message(conn, ref, entry["ReceiptHandle"])
                return {}

            return self._batch(list(params["Entries"]), one)

    def _visibility(self, value: Any) -> int:
        if not 0 <= int(value) <= 43200:
            raise invalid_parameter(f"Value {value} for parameter VisibilityTimeout is invalid. Reason: Must be >= 0 "
                                    "and <= 43200.")
        return int(value)

    def change_message_visibility(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            self._queue(ctx, conn, "ChangeMessageVisibility", ref)
            store.change_visibility(conn, ref, params["ReceiptHandle"], self._visibility(params["VisibilityTimeout"]))
        return {}

    def change_message_visibility_batch(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self._ref(ctx, params)
        with self._write() as conn:
            self._queue(ctx, conn, "ChangeMessageVisibility", ref)

            def one(entry: dict[str, Any]) -> dict[str, Any]:
                store.change_visibility(conn, ref, entry["ReceiptHandle"], self._visibility(entry["VisibilityTimeout"]))
                return {}

            return self._batch(list(params["Entries"]), one)
