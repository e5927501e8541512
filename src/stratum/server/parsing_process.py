"""Parsing and validating large request bodies in a separate process.

Turning hundreds of KB into parameters (8,000 tags in a query string, a 1 MB pipeline definition
in JSON) and checking them against the model is pure CPU in Python. In the server process it holds
the GIL, and every other account's requests wait for it a millisecond at a time, many times per
request: another account's DescribePipeline p99 went from 5 ms idle to 80-150 ms under such a
flood (bench/fairness.py). A process of its own does that work beside the server on another core;
the server's worker thread only waits for the answer, without the GIL.

The process is started (with ``spawn``: the server is threaded) when the server starts and is
replaced if it dies; while it cannot answer, the request is parsed in the server as before, so a
broken parser process costs fairness, never a request.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, cast

from botocore.model import OperationModel

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.protocol.parser import parse_request
from stratum.protocol.service_models import ServiceIndex, service_index
from stratum.protocol.validate import validate_input

log = logging.getLogger("stratum.request")

# An error's parts, as they cross the process boundary.
ErrorParts = tuple[str, str, int, bool, dict[str, Any], dict[str, str]]
# (operation name, parameters, the parse or validation error, the precheck's error).
Parsed = tuple[str, dict[str, Any] | None, ErrorParts | None, ErrorParts | None]
# For the request context: whether the operation's prechecks ran, and the error they found.
Precheck = tuple[bool, ServiceError | None]

# Checks of an operation's documents that are pure functions of its parameters and cost as much as
# parsing them (a pipeline definition, a wildcard-heavy policy): run after validation in the parser
# process. Their outcome does not answer the request there: the provider replays it where it makes
# that check (RequestContext.replay_precheck), after authorization where that comes first.
# service -> operation -> "module:function" taking the parameters and raising ServiceError.
_PIPELINE_DEFINITION = "stratum.services.sagemaker.pipelines.records:check_inline_definition"
PRECHECKS = {
    "sagemaker": {"CreatePipeline": _PIPELINE_DEFINITION, "UpdatePipeline": _PIPELINE_DEFINITION},
    "iam": {
        "CreateRole": "stratum.services.iam.documents:role_trust_policy",
        "UpdateAssumeRolePolicy": "stratum.services.iam.documents:trust_policy",
        **{op: "stratum.services.iam.documents:identity_policy"
           for op in ("PutUserPolicy", "PutRolePolicy", "PutGroupPolicy", "CreatePolicy", "CreatePolicyVersion")},
    },
}


def _parts(exc: ServiceError) -> ErrorParts:
    return exc.code, exc.message, exc.status, exc.sender_fault, exc.fields, exc.headers


def _error(parts: ErrorParts) -> ServiceError:
    code, message, status, sender_fault, fields, headers = parts
    return ServiceError(code, message, status, sender_fault=sender_fault, fields=fields, headers=headers)


def _precheck(service: str, operation: str) -> Callable[[dict[str, Any]], None] | None:
    target = PRECHECKS.get(service, {}).get(operation)
    if target is None:
        return None
    module, _, function = target.partition(":")
    return cast(Callable[[dict[str, Any]], None], getattr(importlib.import_module(module), function))


def _work(service: str, request: HttpRequest, validation_code: str) -> Parsed:
    """In the parser process: the operation's name and its parameters, or the ServiceError (with
    the operation's name when parsing got that far); and what the operation's precheck found."""
    op_name = ""
    try:
        op, params = parse_request(service_index(service), request)
        op_name = op.name
        validate_input(op.input_shape, params, validation_code)
    except ServiceError as exc:
        return op_name, None, _parts(exc), None
    check = _precheck(service, op_name)
    try:
        if check is not None:
            check(params)
    except ServiceError as exc:
        return op_name, params, None, _parts(exc)
    return op_name, params, None, None


def _warm() -> None:
    """Load what parsing needs once, before the first request waits for it."""
    for name in ("iam", "sagemaker", "sts"):
        service_index(name)
    for service, operations in PRECHECKS.items():
        for operation in operations:
            _precheck(service, operation)


class ParserProcess:
    """One process parsing large bodies, one at a time (the server sends them one at a time); a
    background service of the server, started and stopped with it."""

    name = "request-parser"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._pool is None and not self._closed:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn"))
                self._pool.submit(_warm)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def parse(self, index: ServiceIndex, request: HttpRequest, validation_code: str, labels: list[str]
              ) -> tuple[OperationModel, dict[str, Any], Precheck]:
        """parse -> validate (-> the operation's PRECHECKS), in the parser process when it runs, else
        here without the prechecks: (operation, parameters, (whether the prechecks ran, their
        error)). ``labels[1]`` gets the operation's name as soon as it is known."""
        pool = self._pool
        if pool is not None:
            wire = HttpRequest(request.method, request.raw_path, request.query_string, request.headers, request.body,
                               request.client_ip, request.scheme, request.vpce_id, request.route_path)
            try:
                op_name, params, error, deferred = pool.submit(_work, index.name, wire, validation_code).result()
            except BrokenProcessPool:
                log.warning("the request parser process died: starting another one")
                with self._lock:
                    if self._pool is pool:
                        self._pool = None
                self.start()
            except Exception:
                log.exception("the request parser process failed: parsing in the server")
            else:
                labels[1] = op_name or labels[1]
                if error is not None:
                    raise _error(error)
                ran = op_name in PRECHECKS.get(index.name, {})
                return index.model.operation_model(op_name), params or {}, (ran, _error(deferred) if deferred else None)
        op, params = parse_request(index, request)
        labels[1] = op.name
        validate_input(op.input_shape, params, validation_code)
        return op, params, (False, None)
