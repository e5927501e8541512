"""Queues and their messages. Times are epoch milliseconds: a message is visible from
``visible_ms``; receiving it moves that forward by the visibility timeout and gives it a new
receipt token (the one in its receipt handle)."""

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from stratum.store.schema import JsonType, UtcDateTime, metadata

sqs_queues = Table(
    "sqs_queues", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(80), primary_key=True),
    # The settable attributes, as GetQueueAttributes shows them (strings).
    Column("attributes", JsonType, nullable=False),
    Column("tags", JsonType, nullable=False, default=dict),
    Column("last_sequence", BigInteger, nullable=False, default=0),  # FIFO SequenceNumber
    Column("purged_ms", BigInteger, nullable=False, default=0),  # PurgeQueue: one per 60 s
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_modified_at", UtcDateTime, nullable=False),
)

sqs_messages = Table(
    "sqs_messages", metadata,
    Column("message_id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("queue_name", String(80), nullable=False),
    Column("body", Text, nullable=False),
    Column("message_attributes", JsonType, nullable=False, default=dict),
    Column("system_attributes", JsonType, nullable=False, default=dict),
    Column("md5_body", String(32), nullable=False),
    Column("md5_attributes", String(32), nullable=True),
    Column("sender_id", String(256), nullable=False),
    Column("sent_ms", BigInteger, nullable=False),
    Column("visible_ms", BigInteger, nullable=False),
    Column("receive_count", Integer, nullable=False, default=0),
    Column("first_receive_ms", BigInteger, nullable=True),
    Column("receipt_token", String(36), nullable=True),
    Column("group_id", String(128), nullable=True),
    Column("dedup_id", String(128), nullable=True),
    Column("sequence", BigInteger, nullable=True),
    Index("ix_sqs_messages_queue_visible", "account_id", "region", "queue_name", "visible_ms"),
)

# FIFO deduplication: ids seen in the last five minutes, whether or not their message remains.
sqs_dedup = Table(
    "sqs_dedup", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("queue_name", String(80), primary_key=True),
    Column("scope", String(128), primary_key=True),  # the group id with DeduplicationScope messageGroup
    Column("dedup_id", String(128), primary_key=True),
    Column("message_id", String(36), nullable=False),
    Column("sequence", BigInteger, nullable=True),
    Column("expires_ms", BigInteger, nullable=False),
)
