"""Data capture: sampled requests and responses of an endpoint written to S3 as JSON Lines in the
format Model Monitor reads, under ``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/``.

A record is made on the request's path only when it is sampled (a dict and a base64/text copy of
the bodies) and queued in memory; a background thread writes the queued records every
``FLUSH_SECONDS``, one file per endpoint, variant and hour, as the endpoint's execution role."""

from __future__ import annotations

import base64
import logging
import random
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from stratum.hosting.routes import EndpointRoute

log = logging.getLogger("stratum.sagemaker_runtime.capture")

FLUSH_SECONDS = 2.0
MAX_QUEUED = 100_000  # records beyond this (S3 unreachable for long) are dropped, not kept in memory
DEFAULT_CSV = ("text/csv",)
DEFAULT_JSON = ("application/json",)


def sampled(config: dict[str, Any] | None, draw: Callable[[], float] = random.random) -> bool:
    if not config or not config.get("EnableCapture", True):
        return False
    percentage = float(config.get("InitialSamplingPercentage", 0))
    return percentage >= 100 or draw() * 100 < percentage


def _modes(config: dict[str, Any]) -> tuple[bool, bool]:
    modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or []}
    return bool(modes & {"Input", "InputAndOutput"}), bool(modes & {"Output", "InputAndOutput"})


def _encoded(config: dict[str, Any], content_type: str | None, data: bytes) -> tuple[str, str]:
    """(encoding, data) as Model Monitor reads them: CSV and JSON content types (the config's
    CaptureContentTypeHeader, else text/csv and application/json) as text, anything else base64."""
    header = config.get("CaptureContentTypeHeader") or {}
    kind = (content_type or "").split(";")[0].strip().lower()
    csv_types = [t.lower() for t in header.get("CsvContentTypes") or DEFAULT_CSV]
    json_types = [t.lower() for t in header.get("JsonContentTypes") or DEFAULT_JSON]
    for encoding, types in (("CSV", csv_types), ("JSON", json_types)):
        if kind in types:
            try:
                return encoding, data.decode("utf-8")
            except UnicodeDecodeError:
                break
    return "BASE64", base64.b64encode(data).decode("ascii")


def record(config: dict[str, Any], *, request_body: bytes, request_type: str | None, response_body: bytes,
           response_type: str | None, at: datetime, inference_id: str | None = None,
           event_id: str | None = None) -> dict[str, Any]:
    """One capture line: captureData (endpointInput / endpointOutput), eventMetadata, eventVersion."""
    capture_input, capture_output = _modes(config)
    data: dict[str, Any] = {}
    if capture_input:
        encoding, text = _encoded(config, request_type, request_body)
        data["endpointInput"] = {"observedContentType": request_type or "", "mode": "INPUT", "data": text,
                                 "encoding": encoding}
    if capture_output:
        encoding, text = _encoded(config, response_type, response_body)
        data["endpointOutput"] = {"observedContentType": response_type or "", "mode": "OUTPUT", "data": text,
                                  "encoding": encoding}
    metadata: dict[str, Any] = {"eventId": event_id or str(uuid.uuid4()),
                                "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"}
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": metadata, "eventVersion": "0"}


def object_uri(destination: str, endpoint: str, variant: str, at: datetime, file_id: str) -> str:
    """``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/mm-ss-mmm-<id>.jsonl`` (UTC)."""
    return (f"{destination.rstrip('/')}/{endpoint}/{variant}/{at:%Y/%m/%d/%H}/"
            f"{at:%M-%S}-{at.microsecond // 1000:03d}-{file_id}.jsonl")


# (endpoint ARN, variant, destination, hour)
BatchKey = tuple[str, str, str, str]
Writer = Callable[[EndpointRoute, str, str, bytes], None]  # (route, variant, uri, data): writes as the role


class CaptureBuffer:
    name = "sagemaker-runtime data capture"

    def __init__(self, writer: Writer, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.writer = writer
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._pending: dict[BatchKey, tuple[EndpointRoute, list[tuple[datetime, dict[str, Any]]]]] = {}
        self._queued = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, route: EndpointRoute, variant: str, at: datetime, line: dict[str, Any]) -> None:
        config = route.data_capture or {}
        key = (route.arn, variant, config["DestinationS3Uri"], at.strftime("%Y%m%d%H"))
        with self._lock:
            if self._queued >= MAX_QUEUED:
                self.dropped += 1
                return
            entry = self._pending.get(key)
            if entry is None:
                entry = self._pending[key] = (route, [])
            entry[1].append((at, line))
            self._queued += 1

    def flush(self) -> int:
        """Write every queued record; returns the number of files written."""
        with self._flushing:  # a flush returns once whatever was queued before it is written
            return self._flush()

    def _flush(self) -> int:
        import orjson

        with self._lock:
            pending, self._pending, self._queued = self._pending, {}, 0
        files = 0
        for (_arn, variant, destination, _hour), (route, lines) in pending.items():
            first = lines[0][0]
            uri = object_uri(destination, route.name, variant, first, str(uuid.uuid4()))
            data = b"".join(orjson.dumps(line) + b"\n" for _at, line in lines)
            try:
                self.writer(route, variant, uri, data)
                files += 1
            except Exception as exc:  # the role or the bucket refused: logged, the records dropped
                log.warning("writing captured data to %s failed: %s", uri, exc)
        return files

    # ------------------------------------------------------------------ BackgroundService
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sagemaker-runtime-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:
                log.exception("flushing captured data failed")
