"""Where job logs live and how they reach CloudWatch Logs.

A job's log is one file per job under the data directory: the stdout and stderr of its processes
plus Stratum's own ``[stratum]`` lines. That file is also the data file of the job's CloudWatch
Logs stream (``/aws/sagemaker/TrainingJobs``, ``<job>/algo-1-<epoch>``, …): the runner stamps and
indexes its lines as they are appended (services.logs.eventstore), so GetLogEvents, the SDK's log
tailer and ``stratum logs`` all read the same store.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from stratum.services.logs.eventstore import StreamWriter, exclusive

GROUPS = {"training": "/aws/sagemaker/TrainingJobs", "processing": "/aws/sagemaker/ProcessingJobs",
          "transform": "/aws/sagemaker/TransformJobs"}


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


def append_line(path: str | Path, message: str) -> None:
    """One line of Stratum's own, stamped and indexed like the job's output."""
    with exclusive(path):
        StreamWriter(path).append_lines(message + "\n")


def flush(path: str | Path) -> None:
    """Stamp and index the complete lines the job's processes appended since the last call."""
    with exclusive(path):
        StreamWriter(path).flush()


def stream_name(kind: str, name: str, job_id: str, started: float | None = None) -> str:
    """The stream SageMaker writes: ``<job>/algo-1-<epoch>``; a transform job's is named after the
    instance: ``<job>/<instance-id>-<epoch>``."""
    epoch = int(started if started is not None else time.time())
    if kind == "transform":
        return f"{name}/i-{hashlib.sha256(job_id.encode()).hexdigest()[:17]}-{epoch}"
    return f"{name}/algo-1-{epoch}"


def register_job_stream(db: Any, row: Any, path: Path, data_dir: Path) -> str | None:
    """Create the job's log group (if needed) and stream in the job's account, its data file being
    the job log at ``path``; returns the stream name (the existing one when the job runs again
    after a restart)."""
    from stratum.services.logs import catalog

    group = GROUPS.get(row.kind)
    if group is None:
        return None
    relative = os.path.relpath(path, data_dir)
    with db.begin() as conn:
        catalog.create_group(conn, row.account_id, row.region, group)
        for existing in catalog.list_streams(conn, row.account_id, row.region, group, f"{row.name}/"):
            if existing["path"] == relative:
                return str(existing["name"])
        name = stream_name(row.kind, row.name, row.job_id)
        catalog.create_stream(conn, row.account_id, row.region, group, name, path=relative)
    return name
