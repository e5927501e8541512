"""SQS through the unmodified boto3 client and the AWS CLI: queues and their attributes, messages
with visibility timeouts, long polling, batches, redrive to a dead-letter queue, FIFO order and
deduplication, queue policies across accounts, and the errors boto3 maps to its exceptions."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, StratumServer, close_server, make_server


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    srv = make_server(tmp_path_factory, request.param).start()
    try:
        yield srv
    finally:
        close_server(srv)


def name(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_queue_lifecycle_and_errors(server: StratumServer) -> None:
    sqs = server.client("sqs")
    account = server.account_id("dev")
    queue = name()
    url = sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "45"}, tags={"team": "ml"})["QueueUrl"]
    assert url == f"{server.endpoint_url}/{account}/{queue}"
    assert sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url  # idempotent
    with pytest.raises(sqs.exceptions.QueueNameExists) as exists:
        sqs.create_queue(QueueName=queue, Attributes={"VisibilityTimeout": "10"})
    assert _code(exists) == "QueueAlreadyExists"
    assert sqs.get_queue_url(QueueName=queue)["QueueUrl"] == url
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "45" and attributes["DelaySeconds"] == "0"
    assert attributes["QueueArn"] == f"arn:aws:sqs:us-east-1:{account}:{queue}"
    assert attributes["ApproximateNumberOfMessages"] == "0" and int(attributes["CreatedTimestamp"]) > 0
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "3600"})
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])["Attributes"] == {
        "MessageRetentionPeriod": "3600"}
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert _code(exc) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Colour": "blue"})
    assert _code(exc) == "InvalidParameterValue"  # not one of the model's attribute names
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"ContentBasedDeduplication": "true"})
    assert _code(exc) == "InvalidAttributeName"  # a FIFO queue's attribute on a standard queue
    sqs.tag_queue(QueueUrl=url, Tags={"stage": "dev"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "ml", "stage": "dev"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"stage": "dev"}
    assert url in sqs.list_queues(QueueNamePrefix=queue)["QueueUrls"]

    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as missing:
        sqs.get_queue_url(QueueName=queue)
    assert _code(missing) == "AWS.SimpleQueueService.NonExistentQueue"
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.send_message(QueueUrl=url, MessageBody="x")
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName="bad name!")
    assert _code(exc) == "InvalidParameterValue"


def _md5_of_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """The digest SQS documents for message attributes, written out independently of the server."""
    data = b""
    for key in sorted(attributes):
        value = attributes[key]
        data += struct.pack("!I", len(key)) + key.encode() + struct.pack("!I", len(value["DataType"]))
        data += value["DataType"].encode()
        raw = value["BinaryValue"] if "BinaryValue" in value else value["StringValue"].encode()
        data += (b"\x02" if "BinaryValue" in value else b"\x01") + struct.pack("!I", len(raw)) + raw
    return hashlib.md5(data).hexdigest()


def test_send_receive_visibility_and_delete(server: StratumServer) -> None:
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=name())["QueueUrl"]
    attributes = {"kind": {"DataType": "String", "StringValue": "approval"},
                  "size": {"DataType": "Number", "StringValue": "42"},
                  "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello é", MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5("hello é".encode()).hexdigest()
    assert sent["MD5OfMessageAttributes"] == _md5_of_attributes(attributes)

    got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=2, MessageAttributeNames=["All"],
                              MessageSystemAttributeNames=["All"])["Messages"]
    assert len(got) == 1 and got[0]["MessageId"] == sent["MessageId"] and got[0]["Body"] == "hello é"
    assert got[0]["MessageAttributes"] == attributes and got[0]["MD5OfMessageAttributes"] == sent[
        "MD5OfMessageAttributes"]
    assert got[0]["Attributes"]["ApproximateReceiveCount"] == "1" and got[0]["Attributes"]["SentTimestamp"]
    # In flight: not visible until its visibility timeout passes, then received again with a new handle.
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert counts["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
    time.sleep(2.2)
    again = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert again[0]["MessageId"] == sent["MessageId"] and again[0]["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again[0]["ReceiptHandle"] != got[0]["ReceiptHandle"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])  # outdated: accepted, not deleted
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0)
    third = sqs.receive_message(QueueUrl=url)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=third[0]["ReceiptHandle"])
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
        "ApproximateNumberOfMessages"] == "0"
    with pytest.raises(ClientError) as exc:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert _code(exc) == "ReceiptHandleIsInvalid"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="bad \x01 character")
    assert _code(exc) == "InvalidMessageContents"

    # Delayed messages wait; the queue's DelaySeconds applies when the message has none.
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    time.sleep(1.2)
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "later"


def test_long_polling_returns_when_a_message_arrives(server: StratumServer) -> None:
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=name())["QueueUrl"]
    sender = server.client("sqs")
    timer = threading.Timer(1.0, lambda: sender.send_message(QueueUrl=url, MessageBody="wake"))
    began = time.monotonic()
    timer.start()
    try:
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10)
    finally:
        timer.join()
    waited = time.monotonic() - began
    assert got["Messages"][0]["Body"] == "wake" and 0.9 < waited < 5
    began = time.monotonic()
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    assert time.monotonic() - began >= 1


def test_batches_report_each_entry(server: StratumServer) -> None:
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=name())["QueueUrl"]
    out = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "one"}, {"Id": "b", "MessageBody": "two"},
        {"Id": "c", "MessageBody": "three", "DelaySeconds": 901}])
    assert sorted(e["Id"] for e in out["Successful"]) == ["a", "b"]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in out["Failed"]] == [("c", "InvalidParameterValue", True)]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["one", "two"]
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        {"Id": f"m{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])
    assert len(deleted["Successful"]) == 2 and not deleted.get("Failed")
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}])
    assert _code(exc) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)])
    assert _code(exc) == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


def test_redrive_moves_a_message_received_too_often(server: StratumServer) -> None:
    sqs = server.client("sqs")
    dead = sqs.create_queue(QueueName=name("dlq"))["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    source = sqs.create_queue(QueueName=name("src"), Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "2"})})["QueueUrl"]
    message_id = sqs.send_message(QueueUrl=source, MessageBody="poison")["MessageId"]
    for _ in range(2):
        assert sqs.receive_message(QueueUrl=source, VisibilityTimeout=0)["Messages"][0]["MessageId"] == message_id
    assert "Messages" not in sqs.receive_message(QueueUrl=source)
    moved = sqs.receive_message(QueueUrl=dead)["Messages"]
    assert moved[0]["MessageId"] == message_id and moved[0]["Body"] == "poison"
    assert sqs.list_dead_letter_source_queues(QueueUrl=dead)["queueUrls"] == [source]
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=source, Attributes={"RedrivePolicy": json.dumps(
            {"deadLetterTargetArn": dead_arn.replace("dlq-", "missing-"), "maxReceiveCount": 1})})
    assert _code(exc) == "InvalidAttributeValue"


def test_fifo_order_groups_and_deduplication(server: StratumServer) -> None:
    sqs = server.client("sqs")
    url = sqs.create_queue(QueueName=name("orders") + ".fifo", Attributes={
        "FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
    first = sqs.send_message(QueueUrl=url, MessageBody="a1", MessageGroupId="a")
    duplicate = sqs.send_message(QueueUrl=url, MessageBody="a1", MessageGroupId="a")
    assert duplicate["MessageId"] == first["MessageId"] and first["SequenceNumber"].isdigit()
    sqs.send_message(QueueUrl=url, MessageBody="a2", MessageGroupId="a")
    sqs.send_message(QueueUrl=url, MessageBody="b1", MessageGroupId="b", MessageDeduplicationId="b-1")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)["Messages"]
    assert [m["Body"] for m in got] == ["a1"]
    # Group a has a message in flight: only group b is served until it is deleted.
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                   VisibilityTimeout=30)["Messages"]] == ["b1"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]] == ["a2"]
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="no group")
    assert _code(exc) == "MissingParameter"
    plain = sqs.create_queue(QueueName=name())["QueueUrl"]
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=plain, MessageBody="x", MessageGroupId="g")
    assert _code(exc) == "InvalidParameterValue"


def test_queue_policy_decides_for_other_accounts(server: StratumServer) -> None:
    owner, other = server.client("sqs", "dev"), server.client("sqs", "prod")
    url = owner.create_queue(QueueName=name())["QueueUrl"]
    with pytest.raises(ClientError) as exc:
        other.send_message(QueueUrl=url, MessageBody="from prod")
    assert _code(exc) == "AccessDenied" and exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    owner.add_permission(QueueUrl=url, Label="prod-send", AWSAccountIds=[server.account_id("prod")],
                         Actions=["SendMessage"])
    other.send_message(QueueUrl=url, MessageBody="from prod")
    with pytest.raises(ClientError) as exc:
        other.receive_message(QueueUrl=url)
    assert _code(exc) == "AccessDenied"
    assert owner.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "from prod"
    owner.remove_permission(QueueUrl=url, Label="prod-send")
    with pytest.raises(ClientError):
        other.send_message(QueueUrl=url, MessageBody="again")


def test_aws_cli(server: StratumServer) -> None:
    # In us-east-1 the AWS CLI (v1) sends SQS commands to queue.amazonaws.com unless --endpoint-url
    # is given on the command line: its SSL common-name override wins over AWS_ENDPOINT_URL.
    endpoint = ("--endpoint-url", server.endpoint_url)
    queue = name("cli")
    url = json.loads(server.aws_cli("sqs", "create-queue", "--queue-name", queue, *endpoint).stdout)["QueueUrl"]
    server.aws_cli("sqs", "send-message", "--queue-url", url, "--message-body", "from the cli", *endpoint)
    received = json.loads(server.aws_cli("sqs", "receive-message", "--queue-url", url, *endpoint).stdout)
    assert received["Messages"][0]["Body"] == "from the cli"
