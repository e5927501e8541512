"""Queues and messages in the database: sending, receiving (visibility, receive counts, redrive to
the dead-letter queue, FIFO group order), deleting by receipt handle."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, select, update

from stratum.services.sqs.digest import md5_of_attributes, md5_of_body
from stratum.services.sqs.queues import QueueRef, error, no_such_queue, redrive_target
from stratum.services.sqs.tables import sqs_dedup, sqs_messages, sqs_queues

DEDUP_MS = 5 * 60 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def _where_queue(ref: QueueRef) -> Any:
    c = sqs_queues.c
    return (c.account_id == ref.account_id) & (c.region == ref.region) & (c.name == ref.name)


def _where_messages(ref: QueueRef) -> Any:
    c = sqs_messages.c
    return (c.account_id == ref.account_id) & (c.region == ref.region) & (c.queue_name == ref.name)


def get_queue(conn: Connection, ref: QueueRef, *, lock: bool = False) -> dict[str, Any] | None:
    query = select(sqs_queues).where(_where_queue(ref))
    row = conn.execute(query.with_for_update() if lock else query).mappings().first()
    return dict(row) if row is not None else None


def require_queue(conn: Connection, ref: QueueRef, *, lock: bool = False) -> dict[str, Any]:
    queue = get_queue(conn, ref, lock=lock)
    if queue is None:
        raise no_such_queue()
    return queue


def create_queue(conn: Connection, ref: QueueRef, attributes: dict[str, str], tags: dict[str, str]) -> None:
    at = datetime.now(UTC)
    conn.execute(insert(sqs_queues).values(account_id=ref.account_id, region=ref.region, name=ref.name,
                                           attributes=attributes, tags=tags, last_sequence=0, purged_ms=0,
                                           created_at=at, last_modified_at=at))


def update_queue(conn: Connection, ref: QueueRef, **values: Any) -> None:
    conn.execute(update(sqs_queues).where(_where_queue(ref)).values(**values))


def delete_queue(conn: Connection, ref: QueueRef) -> None:
    conn.execute(delete(sqs_messages).where(_where_messages(ref)))
    c = sqs_dedup.c
    conn.execute(delete(sqs_dedup).where((c.account_id == ref.account_id) & (c.region == ref.region)
                                         & (c.queue_name == ref.name)))
    conn.execute(delete(sqs_queues).where(_where_queue(ref)))


def list_queues(conn: Connection, account_id: str, region: str, prefix: str | None) -> list[str]:
    c = sqs_queues.c
    query = select(c.name).where((c.account_id == account_id) & (c.region == region)).order_by(c.name)
    names = [r[0] for r in conn.execute(query)]
    return [n for n in names if not prefix or n.startswith(prefix)]


def counts(conn: Connection, ref: QueueRef) -> dict[str, int]:
    """ApproximateNumberOfMessages (visible), ...NotVisible (in flight) and ...Delayed."""
    c = sqs_messages.c
    at = now_ms()
    ready = func.sum(case((c.visible_ms <= at, 1), else_=0))
    in_flight = func.sum(case((and_(c.visible_ms > at, c.receive_count > 0), 1), else_=0))
    total, visible, flying = conn.execute(select(func.count(), ready, in_flight).where(_where_messages(ref))).one()
    total, visible, flying = int(total or 0), int(visible or 0), int(flying or 0)
    return {"ApproximateNumberOfMessages": visible, "ApproximateNumberOfMessagesNotVisible": flying,
            "ApproximateNumberOfMessagesDelayed": total - visible - flying}


def expire(conn: Connection, ref: QueueRef, retention_seconds: int) -> None:
    c = sqs_messages.c
    conn.execute(delete(sqs_messages).where(_where_messages(ref) & (c.sent_ms < now_ms() - retention_seconds * 1000)))


def encode_attributes(attributes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Message attributes as stored (JSON): binary values in base64."""
    out = {}
    for name, value in attributes.items():
        kept: dict[str, Any] = {"DataType": value["DataType"]}
        if value.get("BinaryValue") is not None:
            kept["BinaryValue"] = base64.b64encode(bytes(value["BinaryValue"])).decode()
        else:
            kept["StringValue"] = value.get("StringValue")
        out[name] = kept
    return out


def decode_attributes(stored: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, value in stored.items():
        if "BinaryValue" in value:
            out[name] = {"DataType": value["DataType"], "BinaryValue": base64.b64decode(value["BinaryValue"])}
        else:
            out[name] = {"DataType": value["DataType"], "StringValue": value["StringValue"]}
    return out


def send(conn: Connection, ref: QueueRef, queue: dict[str, Any], body: str, *, delay: int,
         attributes: dict[str, dict[str, Any]], system: dict[str, Any], sender: str,
         group_id: str | None = None, dedup_id: str | None = None) -> dict[str, Any]:
    """One message into the queue; for a FIFO queue a duplicate within five minutes is accepted
    and not queued again (its first MessageId is answered)."""
    at = now_ms()
    result: dict[str, Any] = {"MD5OfMessageBody": md5_of_body(body)}
    md5_attrs = md5_of_attributes(attributes)
    if md5_attrs:
        result["MD5OfMessageAttributes"] = md5_attrs
    sequence = None
    if ref.fifo:
        if dedup_id is None:
            dedup_id = hashlib.sha256(body.encode()).hexdigest()
        scope = group_id if queue["attributes"].get("DeduplicationScope") == "messageGroup" else ""
        d = sqs_dedup.c
        where = ((d.account_id == ref.account_id) & (d.region == ref.region) & (d.queue_name == ref.name)
                 & (d.scope == scope) & (d.dedup_id == dedup_id))
        seen = conn.execute(select(d.message_id, d.sequence, d.expires_ms).where(where)).first()
        if seen is not None and seen.expires_ms > at:
            return {**result, "MessageId": seen.message_id, "SequenceNumber": str(seen.sequence).zfill(20)}
        if seen is not None:
            conn.execute(delete(sqs_dedup).where(where))
        sequence = int(queue["last_sequence"]) + 1
        update_queue(conn, ref, last_sequence=sequence)
    message_id = str(uuid.uuid4())
    conn.execute(insert(sqs_messages).values(
        message_id=message_id, account_id=ref.account_id, region=ref.region, queue_name=ref.name, body=body,
        message_attributes=encode_attributes(attributes), system_attributes=system,
        md5_body=result["MD5OfMessageBody"], md5_attributes=md5_attrs, sender_id=sender, sent_ms=at,
        visible_ms=at + delay * 1000, receive_count=0, group_id=group_id, dedup_id=dedup_id, sequence=sequence))
    if ref.fifo:
        conn.execute(insert(sqs_dedup).values(
            account_id=ref.account_id, region=ref.region, queue_name=ref.name, scope=scope, dedup_id=dedup_id,
            message_id=message_id, sequence=sequence, expires_ms=at + DEDUP_MS))
        result["SequenceNumber"] = str(sequence).zfill(20)
    result["MessageId"] = message_id
    return result


def receipt_handle(message_id: str, token: str) -> str:
    return base64.urlsafe_b64encode(f"{message_id}:{token}".encode()).decode()


def parse_receipt(handle: str) -> tuple[str, str]:
    try:
        message_id, _, token = base64.urlsafe_b64decode(handle.encode()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        message_id, token = "", ""
    if not message_id or not token:
        raise error("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid",
                    f'The input receipt handle "{handle}" is not a valid receipt handle.')
    return message_id, token


def _move_to_dead_letter(conn: Connection, message: Any, target: QueueRef) -> None:
    """A message received maxReceiveCount times goes to the dead-letter queue, keeping its id."""
    if get_queue(conn, target) is None:
        return  # a redrive target that was deleted: the message stays, as SQS keeps it
    conn.execute(update(sqs_messages).where(sqs_messages.c.message_id == message.message_id).values(
        account_id=target.account_id, region=target.region, queue_name=target.name, visible_ms=now_ms(),
        receipt_token=None, sent_ms=message.sent_ms))


def receive(conn: Connection, ref: QueueRef, queue: dict[str, Any], *, limit: int,
            visibility: int) -> list[Any]:
    """Up to ``limit`` visible messages, now in flight for ``visibility`` seconds. A FIFO queue gives
    them in order and none of a group that has a message in flight."""
    at = now_ms()
    c = sqs_messages.c
    redrive = redrive_target(queue["attributes"])
    query = select(sqs_messages).where(_where_messages(ref) & (c.visible_ms <= at))
    blocked: set[str] = set()
    if ref.fifo:
        query = query.order_by(c.sequence)
        in_flight = conn.execute(select(c.group_id).where(_where_messages(ref) & (c.visible_ms > at)
                                                           & (c.receive_count > 0)).distinct())
        blocked = {r[0] for r in in_flight}
    else:
        query = query.order_by(c.sent_ms)
    out = []
    for message in conn.execute(query.limit(limit * 10 if ref.fifo else limit + 10).with_for_update()):
        if len(out) >= limit:
            break
        if ref.fifo and message.group_id in blocked:
            continue
        if redrive is not None and message.receive_count >= redrive[1]:
            _move_to_dead_letter(conn, message, redrive[0])
            continue
        token = str(uuid.uuid4())
        conn.execute(update(sqs_messages).where(c.message_id == message.message_id).values(
            visible_ms=at + visibility * 1000, receive_count=message.receive_count + 1, receipt_token=token,
            first_receive_ms=message.first_receive_ms or at))
        out.append((message, token, message.receive_count + 1, message.first_receive_ms or at))
    return out


def delete_message(conn: Connection, ref: QueueRef, handle: str) -> None:
    """As SQS: an outdated receipt handle of a message still there succeeds without deleting it."""
    message_id, token = parse_receipt(handle)
    c = sqs_messages.c
    conn.execute(delete(sqs_messages).where(_where_messages(ref) & (c.message_id == message_id)
                                            & (c.receipt_token == token)))


def change_visibility(conn: Connection, ref: QueueRef, handle: str, timeout: int) -> None:
    message_id, token = parse_receipt(handle)
    c = sqs_messages.c
    row = conn.execute(select(c.receipt_token, c.visible_ms).where(
        _where_messages(ref) & (c.message_id == message_id))).first()
    if row is None or row.receipt_token != token or row.visible_ms <= now_ms():
        raise error("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "Message does not exist "
                    "or is not available for visibility timeout change.")
    conn.execute(update(sqs_messages).where(c.message_id == message_id).values(visible_ms=now_ms() + timeout * 1000))


def purge(conn: Connection, ref: QueueRef) -> None:
    conn.execute(delete(sqs_messages).where(_where_messages(ref)))


def dead_letter_sources(conn: Connection, target: QueueRef) -> list[QueueRef]:
    c = sqs_queues.c
    rows = conn.execute(select(c.account_id, c.region, c.name, c.attributes).where(c.region == target.region))
    out = []
    for row in rows:
        redrive = redrive_target(row.attributes or {})
        if redrive is not None and redrive[0] == target:
            out.append(QueueRef(row.account_id, row.region, row.name))
    return out
