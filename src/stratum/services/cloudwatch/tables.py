"""CloudWatch metrics storage: one row per metric (namespace, name, dimension set) and one per
datapoint put, as an aggregate (count, sum, min, max) plus the raw values for percentiles.
Datapoints are read by (metric, time) range only, which the index serves."""

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text, UniqueConstraint

from stratum.store.schema import JsonType, UtcDateTime, metadata

cloudwatch_metrics = Table(
    "cloudwatch_metrics", metadata,
    Column("metric_id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("metric_name", String(255), nullable=False),
    # Dimensions sorted by name, "name=value" joined by newlines: the identity of the dimension set.
    Column("dimensions_key", Text, nullable=False),
    Column("dimensions", JsonType, nullable=False),  # [{"Name", "Value"}] sorted by name
    Column("last_put_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "region", "namespace", "metric_name", "dimensions_key",
                     name="uq_cloudwatch_metrics_identity"),
    Index("ix_cloudwatch_metrics_listing", "account_id", "region", "namespace", "metric_name"),
)

cloudwatch_datapoints = Table(
    "cloudwatch_datapoints", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("metric_id", Integer, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("unit", String(32), nullable=True),
    Column("sample_count", Float, nullable=False),
    Column("sum", Float, nullable=False),
    Column("minimum", Float, nullable=False),
    Column("maximum", Float, nullable=False),
    # [[value, count], ...] when the values themselves were put (Value or Values/Counts), for
    # percentiles; None for StatisticValues, whose percentiles AWS does not compute either.
    Column("values", JsonType, nullable=True),
    Column("storage_resolution", Integer, nullable=False, default=60),
    Index("ix_cloudwatch_datapoints_metric_time", "metric_id", "timestamp"),
)

cloudwatch_alarms = Table(
    "cloudwatch_alarms", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("arn", String(1600), nullable=False),
    Column("definition", JsonType, nullable=False),  # the PutMetricAlarm parameters, as given
    Column("actions_enabled", Boolean, nullable=False, default=True),
    Column("tags", JsonType, nullable=False, default=list),
    Column("state_value", String(32), nullable=False),
    Column("state_reason", Text, nullable=False),
    Column("state_reason_data", Text, nullable=True),
    Column("state_updated_at", UtcDateTime, nullable=False),
    Column("configuration_updated_at", UtcDateTime, nullable=False),
)

cloudwatch_alarm_history = Table(
    "cloudwatch_alarm_history", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("alarm_name", String(255), nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("item_type", String(32), nullable=False),  # ConfigurationUpdate | StateUpdate | Action
    Column("summary", Text, nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_cloudwatch_alarm_history_alarm", "account_id", "region", "alarm_name", "timestamp"),
)
