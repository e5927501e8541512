"""Hyperparameter tuning: random and grid search over training jobs, best by the objective metric.

A tuning job is a thread of the server that launches training jobs named
``<tuning job>-<NNN>-<8 hex>`` (MaxParallelTrainingJobs at a time, MaxNumberOfTrainingJobs in all),
each with the static hyperparameters plus one sampled point, reads the objective from each job's
FinalMetricDataList, and keeps the counters and the best job in the tuning job's row. Bayesian and
Hyperband strategies are accepted and searched randomly (Stratum has no surrogate model).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row

from stratum.jobs import store
from stratum.protocol.errors import ServiceError

if TYPE_CHECKING:
    from stratum.jobs.service import JobService

log = logging.getLogger("stratum.jobs.tuning")

TRAINING_DEFINITION_KEYS = ("RoleArn", "InputDataConfig", "VpcConfig", "OutputDataConfig", "ResourceConfig",
                            "StoppingCondition", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
                            "EnableManagedSpotTraining", "CheckpointConfig", "RetryStrategy", "Environment")


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def definition_of(request: dict[str, Any]) -> dict[str, Any]:
    definition = request.get("TrainingJobDefinition")
    if definition is None:
        definitions = request.get("TrainingJobDefinitions") or []
        if len(definitions) != 1:
            raise validation("Stratum supports tuning jobs with exactly one training job definition")
        definition = definitions[0]
    return dict(definition)


def ranges_of(request: dict[str, Any]) -> dict[str, Any]:
    definition = definition_of(request)
    return dict(definition.get("HyperParameterRanges")
                or request["HyperParameterTuningJobConfig"].get("ParameterRanges") or {})


def objective_of(request: dict[str, Any]) -> dict[str, Any]:
    objective = (definition_of(request).get("TuningObjective")
                 or request["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective"))
    if not objective:
        raise validation("HyperParameterTuningJobObjective is required")
    return dict(objective)


def check_request(request: dict[str, Any]) -> None:
    """What CreateHyperParameterTuningJob rejects beyond the shape validation."""
    config = request["HyperParameterTuningJobConfig"]
    definition = definition_of(request)
    objective = objective_of(request)
    ranges = ranges_of(request)
    if not (definition.get("AlgorithmSpecification") or {}).get("TrainingImage"):
        raise validation("AlgorithmSpecification.TrainingImage is required by Stratum (AlgorithmName is not supported)")
    limits = config["ResourceLimits"]
    strategy = config["Strategy"]
    if strategy == "Grid":
        if ranges.get("IntegerParameterRanges") or ranges.get("ContinuousParameterRanges"):
            raise validation("The Grid search strategy only supports categorical parameter ranges")
        if not ranges.get("CategoricalParameterRanges"):
            raise validation("The Grid search strategy needs at least one categorical parameter range")
    elif not limits.get("MaxNumberOfTrainingJobs"):
        raise validation(f"ResourceLimits.MaxNumberOfTrainingJobs is required for the {strategy} strategy")
    static = definition.get("StaticHyperParameters") or {}
    for kind in ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges"):
        for r in ranges.get(kind) or []:
            if r["Name"] in static:
                raise validation(f"Hyperparameter {r['Name']} is both static and tunable")
            if kind != "CategoricalParameterRanges":
                try:
                    low, high = float(r["MinValue"]), float(r["MaxValue"])
                except ValueError:
                    raise validation(f"Range of {r['Name']}: MinValue and MaxValue must be numbers") from None
                if low > high:
                    raise validation(f"Range of {r['Name']}: MinValue is greater than MaxValue")
                if r.get("ScalingType") in ("Logarithmic", "ReverseLogarithmic") and low <= 0:
                    raise validation(f"Range of {r['Name']}: logarithmic scaling needs MinValue > 0")
    metric_names = {m["Name"] for m in (definition["AlgorithmSpecification"].get("MetricDefinitions") or [])}
    if metric_names and objective["MetricName"] not in metric_names and ":" not in objective["MetricName"]:
        raise validation(f"The objective metric {objective['MetricName']} is not one of the MetricDefinitions")


def _sample(rng: random.Random, low: float, high: float, scaling: str | None) -> float:
    if scaling == "Logarithmic":
        return math.exp(rng.uniform(math.log(low), math.log(high)))
    if scaling == "ReverseLogarithmic":
        # Dense near high (e.g. momentum close to 1): sample 1 - x log-uniformly.
        return 1 - math.exp(rng.uniform(math.log(1 - high if high < 1 else 1e-9), math.log(1 - low)))
    return rng.uniform(low, high)


def candidates(request: dict[str, Any]) -> Iterator[dict[str, str]]:
    """Hyperparameter points to try, in order."""
    config = request["HyperParameterTuningJobConfig"]
    ranges = ranges_of(request)
    limit = int(config["ResourceLimits"].get("MaxNumberOfTrainingJobs") or 0)
    if config["Strategy"] == "Grid":
        cats = ranges.get("CategoricalParameterRanges") or []
        grid = itertools.product(*[[(c["Name"], str(v)) for v in c["Values"]] for c in cats])
        for i, point in enumerate(grid):
            if limit and i >= limit:
                return
            yield dict(point)
        return
    rng = random.Random(config.get("RandomSeed"))
    for _ in range(limit):
        point: dict[str, str] = {}
        for r in ranges.get("IntegerParameterRanges") or []:
            low, high = int(float(r["MinValue"])), int(float(r["MaxValue"]))
            point[r["Name"]] = str(min(high, max(low, round(_sample(rng, low, high, r.get("ScalingType"))))))
        for r in ranges.get("ContinuousParameterRanges") or []:
            value = _sample(rng, float(r["MinValue"]), float(r["MaxValue"]), r.get("ScalingType"))
            point[r["Name"]] = f"{value:.6g}"
        for r in ranges.get("CategoricalParameterRanges") or []:
            point[r["Name"]] = str(rng.choice(r["Values"]))
        yield point


def training_request(tuning: Row[Any], name: str, point: dict[str, str]) -> dict[str, Any]:
    definition = definition_of(tuning.request)
    algorithm = dict(definition["AlgorithmSpecification"])
    request: dict[str, Any] = {"TrainingJobName": name, "AlgorithmSpecification": algorithm,
                               "HyperParameters": {**(definition.get("StaticHyperParameters") or {}), **point}}
    for key in TRAINING_DEFINITION_KEYS:
        if definition.get(key) is not None:
            request[key] = definition[key]
    request.setdefault("StoppingCondition", {"MaxRuntimeInSeconds": 86400})
    return request


def summary(child: Row[Any], tuning: Row[Any]) -> dict[str, Any]:
    """HyperParameterTrainingJobSummary of one training job (epoch-second times)."""
    objective = objective_of(tuning.request)
    value = None
    for metric in child.metrics or []:
        if metric["MetricName"] == objective["MetricName"]:
            value = metric["Value"]
    if child.status == "Completed":
        objective_status = "Succeeded" if value is not None else "Failed"
    elif child.status in store.ACTIVE:
        objective_status = "Pending"
    else:
        objective_status = "Failed"
    out: dict[str, Any] = {
        "TrainingJobName": child.name, "TrainingJobArn": child.arn, "TuningJobName": tuning.name,
        "CreationTime": child.created_at.timestamp(),
        "TrainingStartTime": child.started_at.timestamp() if child.started_at else None,
        "TrainingEndTime": child.ended_at.timestamp() if child.ended_at else None,
        "TrainingJobStatus": child.status,
        "TunedHyperParameters": (child.context or {}).get("TunedHyperParameters") or {},
        "FailureReason": child.failure_reason, "ObjectiveStatus": objective_status,
    }
    definition_name = definition_of(tuning.request).get("DefinitionName")
    if definition_name:
        out["TrainingJobDefinitionName"] = definition_name
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": objective["Type"],
                                                              "MetricName": objective["MetricName"], "Value": value}
    return {k: v for k, v in out.items() if v is not None}


def aggregate(tuning: Row[Any], kids: list[Row[Any]]) -> dict[str, Any]:
    """TrainingJobStatusCounters, ObjectiveStatusCounters and BestTrainingJob."""
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    summaries = [summary(k, tuning) for k in kids]
    for kid, s in zip(kids, summaries, strict=True):
        if kid.status in store.ACTIVE:
            counters["InProgress"] += 1
        elif kid.status == "Completed":
            counters["Completed"] += 1
        elif kid.status == "Stopped":
            counters["Stopped"] += 1
        else:
            counters["NonRetryableError"] += 1
        objectives[s["ObjectiveStatus"]] += 1
    objective = objective_of(tuning.request)
    scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    best = None
    if scored:
        pick = max if objective["Type"] == "Maximize" else min
        best = pick(scored, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    return {"TrainingJobStatusCounters": counters, "ObjectiveStatusCounters": objectives, "BestTrainingJob": best}


class TuningRunner:
    """Drives one tuning job in a thread of the server."""

    def __init__(self, service: JobService, row: Row[Any]) -> None:
        self.service = service
        self.row = row
        self.stop_event = threading.Event()
        self.abandoned = False

    def start(self) -> None:
        threading.Thread(target=self._main, name=f"tuning-{self.row.name}", daemon=True).start()

    def request_stop(self) -> None:
        self.stop_event.set()

    def abandon(self) -> None:
        """Server shutdown: leave the row InProgress for recovery to fail on the next start."""
        self.abandoned = True
        self.stop_event.set()

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:
            log.exception("tuning job %s failed", self.row.name)
            self._finish("Failed", f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            self.service.forget_tuner(self.row.job_id)
            self.service._signal_done(self.row.job_id)

    def _run(self) -> None:
        config = self.row.request["HyperParameterTuningJobConfig"]
        max_parallel = max(1, int(config["ResourceLimits"]["MaxParallelTrainingJobs"]))
        max_runtime = config["ResourceLimits"].get("MaxRuntimeInSeconds")
        deadline = time.monotonic() + float(max_runtime) if max_runtime else None
        target = (config.get("TuningJobCompletionCriteria") or {}).get("TargetObjectiveMetricValue")
        objective = objective_of(self.row.request)
        points = candidates(self.row.request)
        running: list[str] = []
        index = 0
        exhausted = False
        reached = False
        while True:
            while not exhausted and not reached and not self.stop_event.is_set() and len(running) < max_parallel:
                point = next(points, None)
                if point is None:
                    exhausted = True
                    break
                index += 1
                running.append(self._launch(index, point))
            self._record()
            if not running:
                break
            time.sleep(0.2)
            if self.stop_event.is_set() or (deadline is not None and time.monotonic() > deadline):
                for job_id in running:
                    self.service.stop_by_id(job_id)
            still = []
            for job_id in running:
                row = self.service.wait(job_id, timeout=0)
                if row is None:
                    still.append(job_id)
                elif target is not None and row.status == "Completed":
                    value = next((m["Value"] for m in row.metrics or [] if m["MetricName"] == objective["MetricName"]),
                                 None)
                    if value is not None and (value >= target if objective["Type"] == "Maximize" else value <= target):
                        reached = True
            running = still
        if self.abandoned:
            return
        result = self._record()
        if self.stop_event.is_set():
            self._finish("Stopped", None)
        elif result["ObjectiveStatusCounters"]["Succeeded"] == 0:
            with self.service.db.read() as conn:
                kids = store.children(conn, self.row.arn)
            first = next((k.failure_reason for k in kids if k.failure_reason), "no objective metric was reported")
            self._finish("Failed", f"No training job succeeded. First failure: {first}")
        else:
            self._finish("Completed", None)

    def _launch(self, index: int, point: dict[str, str]) -> str:
        name = f"{self.row.name}-{index:03d}-{uuid.uuid4().hex[:8]}"
        request = training_request(self.row, name, point)
        row = self.service.create(kind="training", account=self.row.account_id, region=self.row.region, name=name,
                                  request=request, tags=[], role_arn=request.get("RoleArn"),
                                  parent_arn=self.row.arn, context={"TunedHyperParameters": point})
        return str(row.job_id)

    def _record(self) -> dict[str, Any]:
        with self.service.db.begin() as conn:
            kids = store.children(conn, self.row.arn)
            result = aggregate(self.row, kids)
            store.update_job(conn, self.row.job_id, result=result)
        return result

    def _finish(self, status: str, reason: str | None) -> None:
        with self.service.db.begin() as conn:
            row = store.get_job_by_id(conn, self.row.job_id, lock=True)
            if row is None or row.status not in store.ACTIVE:
                return
            store.update_job(conn, self.row.job_id, status=status, failure_reason=reason, ended_at=store.now())
