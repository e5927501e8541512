"""Lambda functions, their versions ($LATEST and published ones), aliases and the durable queue
of asynchronous (Event) invocations.

A version's configuration is kept as the API shows it (FunctionConfiguration without the ARN and
name, which are derived); its code is a zip in the data directory, addressed by its SHA-256
(``lambda/code/<hex>.zip``).
"""

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from stratum.store.schema import JsonType, UtcDateTime, metadata

lambda_functions = Table(
    "lambda_functions", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("tags", JsonType, nullable=False, default=dict),
    # The function's resource policy: a list of statements as GetPolicy shows them.
    Column("policy", JsonType, nullable=False, default=list),
    Column("policy_revision", String(36), nullable=False),
    Column("last_version", Integer, nullable=False, default=0),  # the last published version number
    Column("created_at", UtcDateTime, nullable=False),
)

lambda_versions = Table(
    "lambda_versions", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("version", String(16), primary_key=True),  # "$LATEST" or "1", "2", ...
    Column("config", JsonType, nullable=False),
    Column("code_sha256", String(64), nullable=False),  # hex; the API shows it base64
)

lambda_aliases = Table(
    "lambda_aliases", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("function_name", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("function_version", String(16), nullable=False),
    Column("description", String(256), nullable=False, default=""),
    Column("routing_config", JsonType, nullable=True),
    Column("revision_id", String(36), nullable=False),
)

# Accepted Event invocations: written before Invoke answers 202, deleted once handled (after at
# most two retries). ``claimed_until`` is the lease of the server running it (epoch ms).
lambda_event_queue = Table(
    "lambda_event_queue", metadata,
    Column("request_id", String(36), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    Column("function_name", String(64), nullable=False),
    Column("qualifier", String(128), nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", BigInteger, nullable=False),  # epoch ms of the next attempt
    Column("claimed_until", BigInteger, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_lambda_event_queue_due", "not_before"),
)

# Layers: a layer's versions are numbered from 1 and a deleted number is never given again, so the
# layer keeps its last number even when it has no version left.
lambda_layers = Table(
    "lambda_layers", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name", String(140), primary_key=True),
    Column("last_version", Integer, nullable=False),
)

lambda_layer_versions = Table(
    "lambda_layer_versions", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("layer_name", String(140), primary_key=True),
    Column("version", Integer, primary_key=True),
    # Description, CompatibleRuntimes, CompatibleArchitectures, LicenseInfo, CreatedDate as shown.
    Column("config", JsonType, nullable=False),
    Column("code_sha256", String(64), nullable=False),  # hex; the archive is in the function code store
    Column("code_size", BigInteger, nullable=False),
    # The version's resource policy: statements as GetLayerVersionPolicy shows them.
    Column("policy", JsonType, nullable=False, default=list),
    Column("policy_revision", String(36), nullable=False),
)
