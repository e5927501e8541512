"""SageMaker jobs and models.

One table holds every job kind (processing, training, transform, tuning): they share their whole
lifecycle (status, transitions, timestamps, stop requests, crash recovery) and differ only in the
request and result documents, kept as JSON so a Describe is one indexed row read.
"""

from sqlalchemy import Boolean, Column, Index, String, Table, Text, UniqueConstraint

from stratum.store.schema import JsonType, UtcDateTime, metadata

sagemaker_jobs = Table(
    "sagemaker_jobs", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("account_id", String(12), nullable=False),
    Column("region", String(32), nullable=False),
    # processing | training | transform | tuning
    Column("kind", String(16), nullable=False),
    # Lower-cased name: the ARN lower-cases it, so "Job" and "job" are the same job.
    Column("name_key", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("arn", String(2048), nullable=False),
    # InProgress | Completed | Failed | Stopping | Stopped
    Column("status", String(16), nullable=False),
    Column("secondary_status", String(32), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("exit_message", Text, nullable=True),
    # The Create* request as the client sent it (minus Tags), echoed by Describe*.
    Column("request", JsonType, nullable=False),
    Column("tags", JsonType, nullable=False, default=list),
    Column("role_arn", String(2048), nullable=True),
    # Captured at creation so later changes cannot alter a running job (the Model of a transform).
    Column("context", JsonType, nullable=True),
    # [{"Status", "StartTime", "EndTime", "StatusMessage"}] with epoch-second times.
    Column("transitions", JsonType, nullable=False, default=list),
    # FinalMetricDataList with epoch-second timestamps.
    Column("metrics", JsonType, nullable=True),
    # What the run produced: ModelArtifacts, tuning counters and best job, ...
    Column("result", JsonType, nullable=True),
    # The tuning job that launched a training job.
    Column("parent_arn", String(2048), nullable=True),
    Column("stop_requested", Boolean, nullable=False, default=False),
    # The server that runs the job, and where its process is, for recovery after a crash.
    Column("node", String(512), nullable=True),
    Column("process", JsonType, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("last_modified_at", UtcDateTime, nullable=False),
    UniqueConstraint("account_id", "region", "kind", "name_key"),
    Index("ix_sagemaker_jobs_listing", "account_id", "region", "kind", "created_at"),
    # Recovery finds the jobs a crash left running.
    Index("ix_sagemaker_jobs_status", "status"),
    Index("ix_sagemaker_jobs_parent", "parent_arn"),
)

sagemaker_models = Table(
    "sagemaker_models", metadata,
    Column("account_id", String(12), primary_key=True),
    Column("region", String(32), primary_key=True),
    Column("name_key", String(64), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("arn", String(2048), nullable=False),
    Column("request", JsonType, nullable=False),
    Column("tags", JsonType, nullable=False, default=list),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_sagemaker_models_created", "account_id", "region", "created_at"),
)
