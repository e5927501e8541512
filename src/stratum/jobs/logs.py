"""Where job logs live (stdout and stderr of the job's processes plus Stratum's own lines, one
file per job under the data directory) and reading them back for ``stratum logs``."""

from __future__ import annotations

from pathlib import Path


def logs_root(data_dir: Path) -> Path:
    return Path(data_dir) / "jobs" / "logs"


def log_path(data_dir: Path, account: str, region: str, kind: str, name: str) -> Path:
    return logs_root(data_dir) / account / region / kind / f"{name.lower()}.log"


def work_dir(data_dir: Path, job_id: str) -> Path:
    return Path(data_dir) / "jobs" / "work" / job_id


def read_log(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
