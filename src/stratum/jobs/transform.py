"""Batch transform: the model's container is started as a local model server (/ping,
/invocations, per sagemaker-inference-toolkit) and the input objects are sent through it the
way SageMaker does: SplitType Line, BatchStrategy SingleRecord/MultiRecord within MaxPayloadInMB,
AssembleWith Line/None, results at <S3OutputPath>/<input path>.out. DataProcessing filters and
JoinSource=Input are applied to CSV records."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratum.hosting import modelserver
from stratum.jobs.models import containers_of
from stratum.jobs.s3io import JobDataError, join_uri, relative_key, split_uri
from stratum.jobs.spec import RunResult

if TYPE_CHECKING:
    from stratum.jobs.runner import Runner

def run_transform(r: Runner) -> RunResult:
    req = r.spec.request
    model = r.spec.context.get("Model") or {}
    containers = containers_of(model)  # resolved: a ModelPackageName container has its package's image
    if len(containers) != 1:
        raise JobDataError("ClientError: Stratum runs transform jobs for models with exactly one container")
    container = containers[0]
    filters = _Filters(req.get("DataProcessing") or {}, req["TransformInput"].get("ContentType"))
    env_vars = modelserver.prepare_container(
        r.s3, container, {**(container.get("Environment") or {}), **(req.get("Environment") or {})}, r.layout, r.log)
    r.check_stop()
    env = r.environment(env_vars)
    env.update({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(req.get("MaxPayloadInMB") or 6)})
    server = modelserver.launch(runtime=r.spec.runtime, layout=r.layout, env=env, log_path=r.spec.log_path,
                                marker=r.spec.job_id, isolation=r.isolation, image=container.get("Image"))
    r.log(f"starting the model server of {container.get('Image')} on port {server.port}")
    r.reporter.process_started(server.pid, r.spec.job_id)
    try:
        _wait_ready(r, server)
        outcome = _transform_inputs(r, server.url, filters)
    finally:
        modelserver.stop(server)
    if outcome == "timeout":
        return r.failed("MaxRuntimeExceeded: the transform job ran longer than allowed and was stopped")
    return r.result("Completed")


def _wait_ready(r: Runner, server: modelserver.ModelServer) -> None:
    try:
        modelserver.wait_ready(server, modelserver.PING_TIMEOUT, r.check_stop)
    except modelserver.NotReady as exc:
        if exc.exit_code is None:
            raise JobDataError("ClientError: the model server did not answer /ping in time") from None
        raise JobDataError(f"ClientError: the model server exited with code {exc.exit_code} before it "
                           f"was ready: {r.last_error_lines(5)}") from None


def _transform_inputs(r: Runner, base: str, filters: _Filters) -> str:
    req = r.spec.request
    tin, tout = req["TransformInput"], req["TransformOutput"]
    s3 = tin["DataSource"]["S3DataSource"]
    if s3.get("S3DataType", "S3Prefix") != "S3Prefix":
        raise JobDataError(f"ClientError: S3DataType {s3['S3DataType']} is not supported by Stratum (use S3Prefix)")
    split = tin.get("SplitType") or "None"
    if split not in ("None", "Line"):
        raise JobDataError(f"ClientError: SplitType {split} is not supported by Stratum (use Line or None)")
    strategy = req.get("BatchStrategy") or "MultiRecord"
    max_payload = int(req.get("MaxPayloadInMB") or 6) * 1024 * 1024
    assemble = tout.get("AssembleWith") or "None"
    client_cfg = req.get("ModelClientConfig") or {}
    timeout = float(client_cfg.get("InvocationsTimeoutInSeconds") or 600)
    retries = int(client_cfg.get("InvocationsMaxRetries") if client_cfg.get("InvocationsMaxRetries") is not None
                  else 3)
    headers = {"Content-Type": tin.get("ContentType") or "application/octet-stream"}
    if tout.get("Accept"):
        headers["Accept"] = tout["Accept"]
    _, prefix = split_uri(s3["S3Uri"])
    objects = list(r.s3.list_objects(s3["S3Uri"]))
    if not objects:
        raise JobDataError(f"ClientError: No S3 objects found under S3 URL \"{s3['S3Uri']}\"")
    concurrency = max(1, int(req.get("MaxConcurrentTransforms") or 1))
    with ThreadPoolExecutor(concurrency) as pool:
        for bucket, key in objects:
            r.check_stop()
            if r.timed_out():
                return "timeout"
            r.log(f"transforming s3://{bucket}/{key}")
            data = r.s3.get_bytes(f"s3://{bucket}/{key}")
            records = _split(data, split)
            model_inputs = [filters.input(rec) for rec in records]
            batches = _batches(model_inputs, split, strategy, max_payload)

            def invoke(batch: list[bytes]) -> bytes:
                return _invoke(base, b"\n".join(batch) if split == "Line" else batch[0], headers, timeout, retries)

            responses = list(pool.map(invoke, batches))
            if filters.active:
                outputs = filters.output(records, responses, batches)
                body = b"".join(line + b"\n" for line in outputs)
            elif assemble == "Line":
                body = b"".join(resp if resp.endswith(b"\n") else resp + b"\n" for resp in responses)
            else:
                body = b"".join(responses)
            r.s3.put_bytes(body, join_uri(tout["S3OutputPath"], relative_key(prefix, key) + ".out"))
    return "completed"


def _split(data: bytes, split: str) -> list[bytes]:
    if split != "Line":
        return [data]
    return [line for line in data.replace(b"\r\n", b"\n").split(b"\n") if line.strip()]


def _batches(records: list[bytes], split: str, strategy: str, max_payload: int) -> list[list[bytes]]:
    if split != "Line" or strategy == "SingleRecord":
        return [[rec] for rec in records]
    batches: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for rec in records:
        if current and size + len(rec) + 1 > max_payload:
            batches.append(current)
            current, size = [], 0
        current.append(rec)
        size += len(rec) + 1
    if current:
        batches.append(current)
    return batches


def _invoke(base: str, body: bytes, headers: dict[str, str], timeout: float, retries: int) -> bytes:
    last = ""
    for _attempt in range(retries + 1):
        request = urllib.request.Request(base + "/invocations", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            if exc.code < 500:
                raise JobDataError(f"ClientError: the model answered {exc.code}: {detail}") from None
            last = f"{exc.code}: {detail}"
        except OSError as exc:
            last = str(exc)
    raise JobDataError(f"ClientError: invoking the model failed: {last}")


_PATH = re.compile(r"^\$(?:\[(.+)\])?$")


class _Filters:
    """InputFilter / JoinSource / OutputFilter on CSV records: "$", "$[1:]", "$[0,-1]", "$[2:5,7]"."""

    def __init__(self, config: dict[str, Any], content_type: str | None) -> None:
        self.input_filter = _compile(config.get("InputFilter"))
        self.output_filter = _compile(config.get("OutputFilter"))
        self.join = (config.get("JoinSource") or "None") == "Input"
        self.active = bool(self.input_filter or self.output_filter or self.join)
        if self.active and (content_type or "text/csv").split(";")[0].strip() != "text/csv":
            raise JobDataError("ClientError: Stratum applies DataProcessing filters and JoinSource to text/csv only")

    def input(self, record: bytes) -> bytes:
        return _apply(self.input_filter, record)

    def output(self, records: list[bytes], responses: list[bytes], batches: list[list[bytes]]) -> list[bytes]:
        predictions = [line for resp in responses for line in resp.replace(b"\r\n", b"\n").split(b"\n") if line.strip()]
        if len(predictions) != len(records):
            raise JobDataError(f"ClientError: the model returned {len(predictions)} records for {len(records)} inputs; "
                               "JoinSource and OutputFilter need one output line per input line")
        del batches
        joined = [rec + b"," + pred if self.join else pred for rec, pred in zip(records, predictions, strict=True)]
        return [_apply(self.output_filter, line) for line in joined]


def _compile(expr: str | None) -> list[slice | int] | None:
    if not expr or expr.strip() == "$":
        return None
    m = _PATH.match(expr.strip())
    if m is None or m.group(1) is None:
        raise JobDataError(f"ClientError: Stratum supports JSONPath filters of the forms $, $[i], $[a:b], $[i,j]; "
                           f"got {expr}")
    parts: list[slice | int] = []
    for item in m.group(1).split(","):
        item = item.strip()
        try:
            if ":" in item:
                start, _, stop = item.partition(":")
                parts.append(slice(int(start) if start else None, int(stop) if stop else None))
            else:
                parts.append(int(item))
        except ValueError:
            raise JobDataError(f"ClientError: unsupported JSONPath filter {expr}") from None
    return parts


def _apply(selector: list[slice | int] | None, record: bytes) -> bytes:
    if selector is None:
        return record
    fields = record.split(b",")
    chosen: list[bytes] = []
    for part in selector:
        if isinstance(part, slice):
            chosen.extend(fields[part])
        elif -len(fields) <= part < len(fields):
            chosen.append(fields[part])
    return b",".join(chosen)


__all__ = ["run_transform", "Path"]
