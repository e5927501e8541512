"""EventBridge event buses (with their resource policies), the events put on them, rules, targets
and the deliveries of matched events.

The "default" bus of an account exists without a row until something is stored about it (a
policy or tags). ``events_entries`` is the durable log of accepted events, in ``seq`` order per
bus, for rules and targets to consume; a service that emits events (SageMaker state changes)
writes them in its own transaction, so none is lost or invented on a crash.
"""

from sqlalchemy import Column, Index, Integer, LargeBinary, String, Table, Text

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

# Rules of a bus: an event pattern, or a schedule (scheduled rules live on the default bus);
# next_fire_at is when a scheduled rule fires next (advanced by whichever server fires it).
events_rules = Table(
    "events_rules", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("bus_name", String(256), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("event_pattern", Text, nullable=True),
    Column("schedule_expression", String(256), nullable=True),
    Column("state", String(64), nullable=False),
    Column("description", String(512), nullable=True),
    Column("role_arn", String(1600), nullable=True),
    Column("managed_by", String(128), nullable=True),
    Column("tags", JsonType, nullable=False, default=list),
    Column("next_fire_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_events_rules_schedule", "next_fire_at"),
)

# A rule's targets, each as PutTargets gave it (the Target shape).
events_targets = Table(
    "events_targets", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("bus_name", String(256), primary_key=True),
    Column("rule_name", String(64), primary_key=True),
    Column("target_id", String(64), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("target", JsonType, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_events_targets_arn", "account_id", "region", "arn"),
)

# The delivery outbox: one row per (event, matched rule, target), written in the transaction that
# accepted the event, with the target as it was then. The deliverer leases a due row, delivers
# it, and stamps it delivered, or schedules the next attempt, or gives up (status failed, with the
# dead-letter queue it was meant for and the error) once the target's RetryPolicy is spent.
events_deliveries = Table(
    "events_deliveries", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(32), nullable=False, unique=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("bus_name", String(256), nullable=False),
    Column("rule_name", String(64), nullable=False),
    Column("rule_arn", String(1600), nullable=False),
    Column("role_arn", String(1600), nullable=True),
    Column("target_id", String(64), nullable=False),
    Column("target", JsonType, nullable=False),
    Column("event", JsonType, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("accepted_at", UtcDateTime, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("dead_letter_arn", String(1600), nullable=True),
    Column("result", JsonType, nullable=True),  # what the target answered (an execution ARN, an event id)
    Column("finished_at", UtcDateTime, nullable=True),
    Index("ix_events_deliveries_due", "status", "next_attempt_at"),
)

# Connections of API destinations: how to authorize the HTTP calls. What AWS keeps in Secrets
# Manager (API key value, password, OAuth client secret, secret invocation parameters) is sealed
# with the server's master key (``secrets``); ``auth`` holds the rest, as DescribeConnection shows it.
events_connections = Table(
    "events_connections", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("description", String(512), nullable=True),
    Column("authorization_type", String(32), nullable=False),
    Column("auth", JsonType, nullable=False),
    Column("secrets", LargeBinary, nullable=False),
    Column("state", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("authorized_at", UtcDateTime, nullable=True),
)

events_api_destinations = Table(
    "events_api_destinations", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("description", String(512), nullable=True),
    Column("connection_arn", String(1600), nullable=False),
    Column("endpoint", String(2048), nullable=False),
    Column("http_method", String(16), nullable=False),
    Column("rate_limit", Integer, nullable=True),
    Column("state", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Archives of a bus's events: each keeps the events matching its pattern (all without one) for
# RetentionDays (0: for ever). Its events are written in the transaction that accepts the event.
events_archives = Table(
    "events_archives", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(48), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("bus_name", String(256), nullable=False),  # the source bus, of the same account and region
    Column("bus_arn", String(1600), nullable=False),
    Column("description", String(512), nullable=True),
    Column("event_pattern", Text, nullable=True),
    Column("retention_days", Integer, nullable=False, default=0),
    Column("kms_key_identifier", String(2048), nullable=True),
    Column("state", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_events_archives_bus", "account_id", "region", "bus_name"),
)

events_archived = Table(
    "events_archived", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("archive_name", String(48), nullable=False),
    Column("event", JsonType, nullable=False),  # the envelope as rules saw it
    Column("size", Integer, nullable=False),  # bytes of its JSON, summed as SizeBytes
    Column("time", UtcDateTime, nullable=False),  # the event's time, which replays select by
    Column("archived_at", UtcDateTime, nullable=False),  # what RetentionDays counts from
    Index("ix_events_archived_archive", "account_id", "region", "archive_name", "seq"),
)

# Replays: the archive's events of [event_start_time, event_end_time) sent again to the rules of its
# bus (all, or those of filter_arns), in archive order, a batch per deliverer pass; ``cursor`` is
# the seq of the last archived event replayed.
events_replays = Table(
    "events_replays", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("description", String(512), nullable=True),
    Column("archive_name", String(48), nullable=False),
    Column("archive_arn", String(1600), nullable=False),
    Column("destination", JsonType, nullable=False),  # {"Arn": bus ARN, "FilterArns": [rule ARNs]}
    Column("event_start_time", UtcDateTime, nullable=False),
    Column("event_end_time", UtcDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("state_reason", String(512), nullable=True),
    Column("cursor", Integer, nullable=False, default=0),
    Column("last_replayed_time", UtcDateTime, nullable=True),
    Column("replay_start_time", UtcDateTime, nullable=False),
    Column("replay_end_time", UtcDateTime, nullable=True),
    Index("ix_events_replays_state", "state"),
)
