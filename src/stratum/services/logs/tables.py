"""CloudWatch Logs groups and streams. Events live in each stream's append-only files
(eventstore), not in the database: ``path`` is the stream's data file, relative to the data
directory."""

from sqlalchemy import BigInteger, Column, Integer, String, Table

from stratum.store.schema import JsonType, metadata

logs_groups = Table(
    "logs_groups", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("created_at", BigInteger, nullable=False),  # epoch milliseconds, as the API shows it
    Column("retention_days", Integer, nullable=True),
    Column("kms_key_id", String(256), nullable=True),
    Column("log_group_class", String(32), nullable=False, default="STANDARD"),
    Column("tags", JsonType, nullable=False, default=dict),
)

logs_streams = Table(
    "logs_streams", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("group_name", String(512), primary_key=True),
    Column("name", String(512), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("path", String(1024), nullable=False),
)
