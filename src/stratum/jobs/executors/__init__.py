"""Where job runners execute: a local thread/process pool (default) or a Ray cluster."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratum.config import Settings
    from stratum.jobs.executors.base import Executor


def build_executor(settings: Settings) -> Executor:
    kind = getattr(settings, "executor", "local") or "local"
    if kind == "ray":
        from stratum.jobs.executors.ray import RayExecutor

        return RayExecutor(getattr(settings, "ray_address", None), getattr(settings, "ray_token_file", None))
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}: use 'local' or 'ray'")
    from stratum.jobs.executors.local import LocalExecutor

    return LocalExecutor(int(getattr(settings, "job_workers", 16) or 16))
