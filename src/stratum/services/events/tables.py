"""EventBridge event buses (with their resource policies) and the events put on them.

The "default" bus of an account exists without a row until something is stored about it (a
policy or tags). ``events_entries`` is the durable log of accepted events, in ``seq`` order per
bus, for rules and targets to consume; a service that emits events (SageMaker state changes)
writes them in its own transaction, so none is lost or invented on a crash.
"""

from sqlalchemy import Column, Index, Integer, String, Table, Text

from stratum.store.schema import JsonType, UtcDateTime, metadata

events_buses = Table(
    "events_buses", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("description", String(512), nullable=True),
    Column("kms_key_identifier", String(2048), nullable=True),
    Column("dead_letter_config", JsonType, nullable=True),
    Column("log_config", JsonType, nullable=True),
    Column("policy", Text, nullable=True),  # resource policy document, None when it has none
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

events_entries = Table(
    "events_entries", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    # The bus the event was put on (its owner may differ from the sender).
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("bus_name", String(256), nullable=False),
    Column("source_account", String(12), nullable=False),  # the event's "account" field
    Column("source", String(256), nullable=False),
    Column("detail_type", String(256), nullable=False),
    Column("detail", Text, nullable=False),  # JSON object text, as put
    Column("resources", JsonType, nullable=False, default=list),
    Column("time", UtcDateTime, nullable=False),
    Column("ingested_at", UtcDateTime, nullable=False),
    Index("ix_events_entries_bus", "account_id", "region", "bus_name", "seq"),
)
