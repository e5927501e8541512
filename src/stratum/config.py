"""Server settings: embedded defaults (SQLite + filesystem under one data directory), overridable by
flags or STRATUM_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 4747
DEFAULT_REGION = "us-east-1"


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("STRATUM_DATA_DIR", "stratum-data")))
    database_url: str | None = field(default_factory=lambda: os.environ.get("STRATUM_DATABASE_URL"))
    host: str = field(default_factory=lambda: os.environ.get("STRATUM_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(os.environ.get("STRATUM_PORT", DEFAULT_PORT)))
    region: str = field(default_factory=lambda: os.environ.get("STRATUM_REGION", DEFAULT_REGION))
    permissive: bool = field(default_factory=lambda: os.environ.get("STRATUM_PERMISSIVE", "") == "1")
    bootstrap_file: Path | None = None
    aws_dir: Path | None = None  # where the generated AWS CLI config/credentials go
    credential_cache_seconds: float = 2.0  # how long a server trusts a cached key/policy lookup

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'stratum.db'}"

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def aws_config_dir(self) -> Path:
        return Path(self.aws_dir).resolve() if self.aws_dir else self.data_dir / "aws"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"
