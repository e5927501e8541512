"""Training metrics read from a job's log: the MetricDefinitions regexes (first group is the value,
last match wins, as FinalMetricDataList reports it) and the built-in XGBoost's evaluation lines.

While a training job runs, ``publishing`` also tails its log and publishes every match to CloudWatch
as SageMaker does: namespace ``/aws/sagemaker/TrainingJobs``, dimension ``TrainingJobName`` (what
the SDK's TrainingJobAnalytics reads), with the instance's CPUUtilization and MemoryUtilization
under dimension ``Host`` = ``<job>/algo-1``; a processing job publishes its CPU and memory under
``/aws/sagemaker/ProcessingJobs``."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stratum.jobs.spec import JobSpec
from stratum.store.db import Database

log = logging.getLogger("stratum.jobs.metrics")

NAMESPACE = "/aws/sagemaker/TrainingJobs"
NAMESPACES = {"training": NAMESPACE, "processing": "/aws/sagemaker/ProcessingJobs"}
PUBLISH_SECONDS = 1.0

# "[12]#011train-rmse:2.1#011validation-rmse:2.3" (CloudWatch shows the tab as #011).
XGBOOST_EVAL = re.compile(r"(?:#011|\t)([A-Za-z_]+)-([A-Za-z0-9_@.\-]+?):([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")
XGBOOST_LINE = re.compile(r"^\[\d+\]")


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class LineMatcher:
    """The metric values one log line holds."""

    def __init__(self, definitions: list[dict[str, str]], builtin_xgboost: bool) -> None:
        self.compiled = []
        for definition in definitions:
            try:
                self.compiled.append((definition["Name"], re.compile(definition["Regex"])))
            except re.error:
                continue  # validated at creation; an unusable one simply never matches
        self.builtin_xgboost = builtin_xgboost

    @property
    def empty(self) -> bool:
        return not self.compiled and not self.builtin_xgboost

    def match(self, line: str) -> list[tuple[str, float]]:
        found = []
        for name, regex in self.compiled:
            m = regex.search(line)
            if m is not None:
                value = _float(m.group(1) if m.groups() else m.group(0))
                if value is not None:
                    found.append((name, value))
        if self.builtin_xgboost and XGBOOST_LINE.match(line):
            for channel, metric, value_text in XGBOOST_EVAL.findall(line):
                value = _float(value_text)
                if value is not None:
                    found.append((f"{channel}:{metric}", value))
        return found


def parse_metrics(log_path: str | Path, definitions: list[dict[str, str]], builtin_xgboost: bool,
                  timestamp: float) -> list[dict[str, Any]]:
    """FinalMetricDataList entries, epoch-second timestamps."""
    matcher = LineMatcher(definitions, builtin_xgboost)
    final: dict[str, float] = {}
    path = Path(log_path)
    if not path.is_file() or matcher.empty:
        return []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            for name, value in matcher.match(line):
                final[name] = value
    return [{"MetricName": name, "Value": value, "Timestamp": timestamp} for name, value in final.items()]


# ------------------------------------------------------------------------------------ publishing
class _ProcessSampler:
    """CPU and memory of a process group from /proc (Linux), as utilisation percentages."""

    def __init__(self) -> None:
        self.last: tuple[float, float] | None = None  # (cpu seconds, wall time)
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.cpus = os.cpu_count() or 1

    def sample(self, pgid: int) -> tuple[float, float] | None:
        cpu_ticks = 0
        rss_pages = 0
        try:
            entries = os.listdir("/proc")
        except OSError:
            return None
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            # after the command: state ppid pgrp ... utime(12) stime(13) ... rss(22)
            if len(fields) > 21 and int(fields[2]) == pgid:
                cpu_ticks += int(fields[11]) + int(fields[12])
                rss_pages += int(fields[21])
        now = time.monotonic()
        cpu = cpu_ticks / self.ticks
        previous, self.last = self.last, (cpu, now)
        if previous is None or now <= previous[1]:
            return None
        cpu_pct = 100.0 * (cpu - previous[0]) / (now - previous[1])  # of one core, as SageMaker reports it
        total = os.sysconf("SC_PHYS_PAGES")
        return max(cpu_pct, 0.0), 100.0 * rss_pages / total if total > 0 else 0.0


class JobMetricsPublisher:
    """Tails one job's log while it runs and publishes its metrics as CloudWatch datapoints."""

    def __init__(self, db: Database, account: str, region: str, job_name: str, job_id: str, log_path: str,
                 definitions: list[dict[str, str]], builtin_xgboost: bool, namespace: str = NAMESPACE) -> None:
        self.db = db
        self.namespace = namespace
        self.account, self.region, self.job_name, self.job_id = account, region, job_name, job_id
        self.log_path = log_path
        self.matcher = LineMatcher(definitions, builtin_xgboost)
        self.offset = 0
        self.partial = b""
        self.sampler = _ProcessSampler()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"metrics-{job_name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._publish(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(PUBLISH_SECONDS):
            try:
                self._publish(final=False)
            except Exception:
                log.exception("publishing metrics of %s failed", self.job_name)

    def _new_lines(self, final: bool) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        lines = data.split(b"\n")
        self.partial = b"" if final else lines.pop()
        return [line.decode("utf-8", errors="replace") for line in lines if line]

    def _publish(self, final: bool) -> None:
        from stratum.services.cloudwatch import datapoints

        now = datetime.now(UTC)
        rows: dict[str, list[dict[str, Any]]] = {}
        if not self.matcher.empty:
            for line in self._new_lines(final):
                for name, value in self.matcher.match(line):
                    rows.setdefault(name, []).append(_point(now, value, None))
        usage = None if final else self._usage()
        with self.db.begin() as conn:
            for name, points in rows.items():
                datapoints.put(conn, datapoints.MetricRef(self.account, self.region, self.namespace, name,
                                                          (("TrainingJobName", self.job_name),)), points, now)
            if usage is not None:
                host = (("Host", f"{self.job_name}/algo-1"),)
                for name, value in zip(("CPUUtilization", "MemoryUtilization"), usage, strict=True):
                    datapoints.put(conn, datapoints.MetricRef(self.account, self.region, self.namespace, name, host),
                                   [_point(now, value, "Percent")], now)

    def _usage(self) -> tuple[float, float] | None:
        from stratum.jobs import store

        with self.db.read() as conn:
            row = store.get_job_by_id(conn, self.job_id)
        process = (row.process or {}) if row is not None else {}
        if not process.get("pid") or process.get("host") != socket.gethostname():
            return None  # not started yet, or running on another machine (a Ray worker)
        return self.sampler.sample(int(process["pid"]))


def _point(at: datetime, value: float, unit: str | None) -> dict[str, Any]:
    return {"timestamp": at, "unit": unit, "sample_count": 1.0, "sum": value, "minimum": value, "maximum": value,
            "values": [[value, 1.0]], "storage_resolution": 1}


@contextmanager
def publishing(db: Database, spec: JobSpec) -> Iterator[None]:
    """Publish a job's metrics while the block (the job's run) lasts: a training job's metric
    definitions and usage, a processing job's usage."""
    namespace = NAMESPACES.get(spec.kind)
    if namespace is None:
        yield
        return
    definitions: list[dict[str, str]] = []
    builtin_xgboost = False
    if spec.kind == "training":
        definitions = (spec.request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        program = (spec.request.get("HyperParameters") or {}).get("sagemaker_program")
        builtin_xgboost = spec.runtime == "xgboost" and not program
    publisher = JobMetricsPublisher(db, spec.account_id, spec.region, spec.name, spec.job_id, spec.log_path,
                                         definitions, builtin_xgboost, namespace)
    publisher.start()
    try:
        yield
    finally:
        try:
            publisher.close()
        except Exception:
            log.exception("publishing the last metrics of %s failed", spec.name)
