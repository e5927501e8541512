"""Queue names, URLs, ARNs and attributes as SQS accepts and shows them (pure logic)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from stratum.protocol.errors import ServiceError

_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ARN = re.compile(r"arn:aws[a-zA-Z-]*:sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_.-]{1,80})")

# Settable attributes: (minimum, maximum, default) for the numeric ones.
NUMERIC = {
    "DelaySeconds": (0, 900, 0),
    "MaximumMessageSize": (1024, 1048576, 1048576),
    "MessageRetentionPeriod": (60, 1209600, 345600),
    "ReceiveMessageWaitTimeSeconds": (0, 20, 0),
    "VisibilityTimeout": (0, 43200, 30),
    "KmsDataKeyReusePeriodSeconds": (60, 86400, 300),
}
OTHER = ("Policy", "RedrivePolicy", "RedriveAllowPolicy", "KmsMasterKeyId", "SqsManagedSseEnabled")
FIFO_ONLY = ("ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit")
COMPUTED = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn")


def error(code: str, query_code: str, message: str, status: int = 400) -> ServiceError:
    """SQS moved from the query protocol to JSON: the modeled error's name is ``__type`` and the
    old query code travels in ``x-amzn-query-error``, which is what boto3 reports as the code."""
    return ServiceError(code, message, status, headers={"x-amzn-query-error": f"{query_code};Sender"})


def invalid_parameter(message: str) -> ServiceError:
    return error("InvalidParameterValue", "InvalidParameterValue", message)


def invalid_attribute_value(message: str) -> ServiceError:
    return error("InvalidAttributeValue", "InvalidAttributeValue", message)


def no_such_queue() -> ServiceError:
    return error("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
                 "The specified queue does not exist.")


@dataclass(frozen=True)
class QueueRef:
    account_id: str
    region: str
    name: str

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{self.name}"

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")

    def url(self, endpoint_url: str) -> str:
        return f"{endpoint_url.rstrip('/')}/{self.account_id}/{self.name}"


def check_name(name: str) -> None:
    base = name[:-5] if name.endswith(".fifo") else name
    if not _NAME.fullmatch(base) or len(name) > 80:
        raise invalid_parameter("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in "
                                "length")


def parse_url(url: str, region: str) -> QueueRef:
    """The queue a QueueUrl names: its path is /<account>/<name> (the host is not checked: a
    client may build the URL from another endpoint's answer)."""
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) != 2 or not re.fullmatch(r"\d{12}", parts[0]):
        raise invalid_parameter(f"Value {url} for parameter QueueUrl is invalid. Reason: Invalid URL format.")
    return QueueRef(parts[0], region, parts[1])


def parse_arn(arn: str) -> QueueRef | None:
    m = _ARN.fullmatch(arn)
    return QueueRef(m.group(2), m.group(1), m.group(3)) if m else None


def _numeric(name: str, value: Any) -> str:
    low, high, _ = NUMERIC[name]
    try:
        number = int(str(value))
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise invalid_attribute_value(f"Invalid value for the parameter {name}.")
    return str(number)


def _redrive(value: str, region: str) -> str:
    try:
        policy = json.loads(value)
        target = parse_arn(str(policy["deadLetterTargetArn"]))
        count = int(policy["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        raise invalid_attribute_value(f"Value {value} for parameter RedrivePolicy is invalid. Reason: Redrive "
                                      "policy is not a valid JSON map with deadLetterTargetArn and "
                                      "maxReceiveCount.") from None
    if target is None or not 1 <= count <= 1000:
        raise invalid_attribute_value(f"Value {value} for parameter RedrivePolicy is invalid. Reason: "
                                      "deadLetterTargetArn must be a queue ARN and maxReceiveCount from 1 to 1000.")
    if target.region != region:
        raise invalid_attribute_value(f"Value {value} for parameter RedrivePolicy is invalid. Reason: The dead "
                                      "letter queue must be in the same region as the source queue.")
    return json.dumps({"deadLetterTargetArn": target.arn, "maxReceiveCount": count}, separators=(",", ":"))


def checked(attributes: dict[str, str], ref: QueueRef, *, creating: bool) -> dict[str, str]:
    """Settable attributes of a request, checked and normalised."""
    out: dict[str, str] = {}
    for name, value in attributes.items():
        if name in NUMERIC:
            out[name] = _numeric(name, value)
        elif name == "RedrivePolicy":
            out[name] = _redrive(value, ref.region) if value else ""
        elif name in ("Policy", "RedriveAllowPolicy"):
            if value:
                try:
                    json.loads(value)
                except ValueError:
                    raise invalid_attribute_value(f"Invalid value for the parameter {name}.") from None
            out[name] = value
        elif name == "FifoQueue":
            if not creating:
                raise invalid_attribute_value("Invalid attribute name: FifoQueue can only be set at creation.")
            if str(value).lower() != str(ref.fifo).lower():
                raise invalid_attribute_value("The name of a FIFO queue can only include alphanumeric characters, "
                                              "hyphens, or underscores, must end with .fifo suffix")
        elif name in FIFO_ONLY:
            if not ref.fifo:
                raise error("InvalidAttributeName", "InvalidAttributeName", f"Unknown Attribute {name}.")
            out[name] = str(value)
        elif name in OTHER:
            out[name] = str(value)
        else:
            raise error("InvalidAttributeName", "InvalidAttributeName", f"Unknown Attribute {name}.")
    return out


def defaults(ref: QueueRef) -> dict[str, str]:
    out = {name: str(default) for name, (_, _, default) in NUMERIC.items() if name != "KmsDataKeyReusePeriodSeconds"}
    out["SqsManagedSseEnabled"] = "true"
    if ref.fifo:
        out.update({"FifoQueue": "true", "ContentBasedDeduplication": "false", "DeduplicationScope": "queue",
                    "FifoThroughputLimit": "perQueue"})
    return out


def redrive_target(attributes: dict[str, str]) -> tuple[QueueRef, int] | None:
    value = attributes.get("RedrivePolicy")
    if not value:
        return None
    policy = json.loads(value)
    target = parse_arn(policy["deadLetterTargetArn"])
    return (target, int(policy["maxReceiveCount"])) if target else None
