"""SQS queues as EventBridge sees them: the target of a rule, and a target's dead-letter queue.
EventBridge sends as ``events.amazonaws.com``, which the queue's policy must allow (with the rule
as aws:SourceArn); the message is written in the transaction that marks the delivery done (or, for
a dead letter, failed), so it is sent exactly once."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection

from stratum.auth.service_principal import service_allowed

EVENTS_PRINCIPAL = "events.amazonaws.com"


class QueueRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def send(conn: Connection, arn: str, body: str, *, rule_arn: str, attributes: dict[str, dict[str, Any]] | None = None,
         group_id: str | None = None) -> str:
    """The message id of ``body`` sent to the queue ``arn``."""
    from stratum.services.sqs import queues, store

    ref = queues.parse_arn(arn)
    if ref is None:
        raise QueueRefused("ValidationException", f"{arn} is not an SQS queue ARN")
    queue = store.get_queue(conn, ref, lock=True)
    if queue is None:
        raise QueueRefused("ResourceNotFoundException", f"The queue {arn} does not exist.")
    if not service_allowed(EVENTS_PRINCIPAL, "sqs:SendMessage", ref.arn, ref.account_id,
                           queue["attributes"].get("Policy") or None, source_arn=rule_arn,
                           source_account=rule_arn.split(":")[4]):
        raise QueueRefused("AccessDeniedException", f"The policy of {arn} does not allow {EVENTS_PRINCIPAL} to send "
                           f"it messages from {rule_arn}.")
    if ref.fifo and not group_id:
        raise QueueRefused("ValidationException", f"{arn} is a FIFO queue: the target needs SqsParameters."
                           "MessageGroupId.")
    sent = store.send(conn, ref, queue, body, delay=0, attributes=attributes or {}, system={},
                      sender=EVENTS_PRINCIPAL, group_id=group_id if ref.fifo else None)
    return str(sent["MessageId"])


def dead_letter(conn: Connection, arn: str, *, event: dict[str, Any], rule_arn: str, target_arn: str, error_code: str,
                error_message: str, condition: str, attempts: int) -> str | None:
    """Put an event EventBridge gave up on in the target's dead-letter queue, with the message
    attributes EventBridge documents; None when sent, else why not (kept with the failure)."""
    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": value}

    attributes = {"RULE_ARN": text(rule_arn), "TARGET_ARN": text(target_arn), "ERROR_CODE": text(error_code),
                  "ERROR_MESSAGE": text(error_message[:1000] or error_code),
                  "RETRY_ATTEMPTS": text(str(max(0, attempts - 1)))}
    if condition:  # an error EventBridge does not retry has no exhausted condition
        attributes["EXHAUSTED_RETRY_CONDITION"] = text(condition)
    try:
        send(conn, arn, json.dumps(event, separators=(",", ":")), rule_arn=rule_arn, attributes=attributes,
             group_id=event.get("id"))
    except QueueRefused as refused:
        return refused.message
    return None
