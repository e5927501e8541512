"""Server settings: embedded defaults (SQLite + filesystem under one data directory), overridable by
flags or STRATUM_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 4747
DEFAULT_REGION = "us-east-1"


class SettingsError(ValueError):
    """A setting (flag or environment variable) the server cannot use: a user error, told in one line."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


@dataclass
class Settings:
    # Every command finds its data the same way: --data-dir, else $STRATUM_DATA_DIR, else ./stratum-data
    # (made absolute at once). With SQLite the database is in it; with PostgreSQL it still holds the
    # object store, the master key (unless set apart below) and job logs, so it must be given then.
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("STRATUM_DATA_DIR", "stratum-data")))
    database_url: str | None = field(default_factory=lambda: os.environ.get("STRATUM_DATABASE_URL"))
    host: str = field(default_factory=lambda: os.environ.get("STRATUM_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: _env_int("STRATUM_PORT", DEFAULT_PORT))
    region: str = field(default_factory=lambda: os.environ.get("STRATUM_REGION", DEFAULT_REGION))
    permissive: bool = field(default_factory=lambda: os.environ.get("STRATUM_PERMISSIVE", "") == "1")
    bootstrap_file: Path | None = None
    aws_dir: Path | None = None  # where the generated AWS CLI config/credentials go
    credential_cache_seconds: float = 2.0  # how long a server trusts a cached key/policy lookup
    # SageMaker jobs (stratum.jobs): where they run (local process pool or a Ray cluster) and how.
    executor: str = field(default_factory=lambda: os.environ.get("STRATUM_EXECUTOR", "local"))
    ray_address: str | None = field(default_factory=lambda: os.environ.get("STRATUM_RAY_ADDRESS") or None)
    # The token of a Ray cluster with token authentication (stratum.jobs.executors.ray).
    ray_token_file: Path | None = field(default_factory=lambda: (
        Path(os.environ["STRATUM_RAY_TOKEN_FILE"]) if os.environ.get("STRATUM_RAY_TOKEN_FILE") else None))
    job_workers: int = field(default_factory=lambda: _env_int("STRATUM_JOB_WORKERS", 16))
    job_isolation: str = field(default_factory=lambda: os.environ.get("STRATUM_JOB_ISOLATION", "auto"))
    job_images_file: Path | None = field(
        default_factory=lambda: Path(os.environ["STRATUM_JOB_IMAGES"]) if os.environ.get("STRATUM_JOB_IMAGES") else None)
    keep_job_dirs: bool = field(default_factory=lambda: os.environ.get("STRATUM_KEEP_JOB_DIRS", "") == "1")
    # Pipeline engine: threads for its own work, threads for handler steps (Lambda, jobs), how often
    # it looks for executions it does not run yet, the MaxParallelExecutionSteps default, and a
    # YAML file of Lambda functions created (or replaced) at start (see stratum.engine.functions).
    engine_workers: int = field(default_factory=lambda: _env_int("STRATUM_ENGINE_WORKERS", 8))
    engine_step_threads: int = field(default_factory=lambda: _env_int("STRATUM_ENGINE_STEP_THREADS", 64))
    engine_poll_seconds: float = field(default_factory=lambda: _env_float("STRATUM_ENGINE_POLL_SECONDS", 2))
    engine_default_parallelism: int = 50
    functions_file: Path | None = field(default_factory=lambda: (
        Path(os.environ["STRATUM_FUNCTIONS_FILE"]) if os.environ.get("STRATUM_FUNCTIONS_FILE") else None))
    # Named VPC endpoint listeners (stratum.server.listeners): a network YAML file and/or
    # --vpc-endpoint vpce-ID=HOST:PORT[:POLICY_FILE] specs.
    network_file: Path | None = field(
        default_factory=lambda: Path(os.environ["STRATUM_NETWORK"]) if os.environ.get("STRATUM_NETWORK") else None)
    vpc_endpoint_specs: list[str] = field(default_factory=list)
    # Several servers on one PostgreSQL database: how long a server's claim on an execution or job
    # lasts without renewal, i.e. how soon another server takes over the work of one that died.
    lease_seconds: float = field(default_factory=lambda: _env_float("STRATUM_LEASE_SECONDS", 30))
    # How often the instance metrics of endpoints (CPU, memory) are published to CloudWatch.
    endpoint_metrics_seconds: float = field(
        default_factory=lambda: _env_float("STRATUM_ENDPOINT_METRICS_SECONDS", 10))
    # How often each endpoint model server's /ping is checked (three misses in a row restart it).
    endpoint_health_seconds: float = field(
        default_factory=lambda: _env_float("STRATUM_ENDPOINT_HEALTH_SECONDS", 10))
    # The object store's root (default <data dir>/objects): every server of one database must use the
    # same directory (a shared filesystem), as it must use the same master key.
    objects_root: Path | None = field(
        default_factory=lambda: Path(os.environ["STRATUM_OBJECTS_DIR"]) if os.environ.get("STRATUM_OBJECTS_DIR") else None)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    def check_serving(self) -> None:
        """Refuse, before anything starts, values no server can run with (a port the profiles would
        name but nothing listens on, a lease that never lasts)."""
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"the port must be 0-65535, got {self.port}")
        for name in ("lease_seconds", "engine_poll_seconds"):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{name.replace('_', '-')} must be more than 0, got {getattr(self, name)}")
        for name in ("job_workers", "engine_workers", "engine_step_threads"):
            if getattr(self, name) < 1:
                raise SettingsError(f"STRATUM_{name.upper()} must be at least 1, got {getattr(self, name)}")
        from stratum.jobs.images import check_file  # the jobs' image table, read by every job

        try:
            check_file(self.job_images_file)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'stratum.db'}"

    @property
    def objects_dir(self) -> Path:
        return Path(self.objects_root).resolve() if self.objects_root else self.data_dir / "objects"

    @property
    def aws_config_dir(self) -> Path:
        return Path(self.aws_dir).resolve() if self.aws_dir else self.data_dir / "aws"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # The 256-bit master key under which KMS key material and S3 object keys are sealed: a file created
    # (0600) on first start, at data_dir/master.key unless set; STRATUM_MASTER_KEY (base64) overrides it.
    master_key_file: Path | None = field(default_factory=lambda: Path(os.environ["STRATUM_MASTER_KEY_FILE"])
                                         if os.environ.get("STRATUM_MASTER_KEY_FILE") else None)

    # Whether the data directory was chosen (--data-dir or STRATUM_DATA_DIR), not the ./stratum-data default.
    data_dir_given: bool = field(default_factory=lambda: bool(os.environ.get("STRATUM_DATA_DIR")))

    @property
    def master_key_path(self) -> Path:
        return Path(self.master_key_file).resolve() if self.master_key_file else self.data_dir / "master.key"

    @property
    def master_key_source(self) -> str:
        """Where the master key comes from, as printed at start."""
        return "$STRATUM_MASTER_KEY" if os.environ.get("STRATUM_MASTER_KEY") else str(self.master_key_path)
