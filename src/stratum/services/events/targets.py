"""Target kinds: what PutTargets accepts and how a matched event reaches each kind.

A kind is one entry of ``KINDS``: how to recognise its ARNs, what PutTargets checks, and one
``deliver`` function. Delivering either returns what the target answered (the deliverer then
stamps the delivery done) or stamps the delivery itself with ``job.complete(conn, ...)`` inside
the transaction that did the work, so that work and stamp commit together (a bus target). It
raises TargetError when the target refused or failed; ``retryable`` says whether EventBridge
would try again (throttling and server faults) or give up at once (a missing resource, a denied
permission), as EventBridge does.

Targets act as a principal: a target's RoleArn (else the rule's) is assumed by
``events.amazonaws.com`` (its trust policy must allow that service), and the target operation runs
in-process as that role session, through the same handler and policy evaluation as a signed
request from it. A bus target without a role acts as the rule's account (its root), so the
target bus's resource policy decides across accounts.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from stratum import ids
from stratum.auth.identity import Identity
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.server.context import RequestContext
from stratum.services.events import buses, transform
from stratum.services.events.buses import BusRef

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

EVENTS_PRINCIPAL = "events.amazonaws.com"
_PIPELINE_ARN = re.compile(r"^arn:aws[\w-]*:sagemaker:([a-z0-9-]+):(\d{12}):pipeline/([A-Za-z0-9\-]{1,256})$")
_API_DESTINATION_ARN = re.compile(r"^arn:aws[\w-]*:events:([a-z0-9-]+):(\d{12}):api-destination/[\.\-_A-Za-z0-9]+/[\w-]+$")
_FUNCTION_ARN = re.compile(r"^arn:aws[\w-]*:lambda:([a-z0-9-]+):(\d{12}):function:[\w-]{1,64}(:[\w$-]+)?$")
_QUEUE_ARN = re.compile(r"^arn:aws[\w-]*:sqs:([a-z0-9-]+):(\d{12}):[\w-]{1,80}(\.fifo)?$")
_BUS_ARN = re.compile(r"^arn:aws[\w-]*:events:[a-z0-9-]+:\d{12}:event-bus/[/\.\-_A-Za-z0-9]+$")
_RETRYABLE = frozenset({"ThrottlingException", "Throttling", "ServiceUnavailable", "InternalFailure",
                        "InternalServerError", "InternalServerException", "ConcurrentModificationException"})


class TargetError(Exception):
    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable

    @classmethod
    def of(cls, exc: ServiceError) -> TargetError:
        return cls(exc.code, exc.message, exc.code in _RETRYABLE or exc.status >= 500)


@dataclass
class Job:
    """One delivery the deliverer holds the lease of."""

    seq: int
    delivery_id: str
    account_id: str
    region: str
    rule_name: str
    rule_arn: str
    role_arn: str | None
    target: dict[str, Any]
    event: dict[str, Any]
    accepted_at: datetime
    complete: Callable[[Connection, dict[str, Any] | None], None]
    completed: bool = False

    @property
    def input_text(self) -> str:
        return transform.render(self.target, self.event, rule_arn=self.rule_arn, rule_name=self.rule_name,
                                ingestion_time=self.accepted_at.strftime("%Y-%m-%dT%H:%M:%SZ"))

    @property
    def acting_role(self) -> str | None:
        return self.target.get("RoleArn") or self.role_arn


@dataclass(frozen=True)
class TargetKind:
    name: str
    recognise: Callable[[str], bool]
    check: Callable[[dict[str, Any], BusRef, str | None], None]
    deliver: Callable[[AppState, Job], dict[str, Any] | None]


# ------------------------------------------------------------------------------ acting as a role
class _Sessions:
    """Role sessions for targets, reused until shortly before they expire (a session per
    delivery would leave a row behind for every event)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, str]] = {}

    def identity(self, app: AppState, role_arn: str) -> Identity:
        from stratum.services.sts.sessions import issue_service_role_session

        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(role_arn)
        if hit is None or hit[0] < now:
            try:
                creds = issue_service_role_session(app.db, role_arn, "EventBridge", service=EVENTS_PRINCIPAL)
            except ServiceError as exc:
                raise TargetError(exc.code, exc.message, False) from None
            hit = (now + 2700, creds["AccessKeyId"])
            with self._lock:
                self._cache[role_arn] = hit
        credential = app.authenticator.lookup(hit[1])
        if credential is None:  # the role was deleted since
            with self._lock:
                self._cache.pop(role_arn, None)
            raise TargetError("AccessDenied", f"Role {role_arn} cannot be assumed by {EVENTS_PRINCIPAL}", False)
        return credential.identity


SESSIONS = _Sessions()


def _context(app: AppState, service: str, operation: str, region: str, identity: Identity) -> RequestContext:
    return RequestContext(app, ids.request_id(), service, operation, region, identity,
                          HttpRequest("POST", "/", "", {}))


def account_identity(account_id: str) -> Identity:
    return Identity(account_id=account_id, arn=f"arn:aws:iam::{account_id}:root", kind="root",
                    principal_id=account_id)


# ------------------------------------------------------------------------------------ event buses
def _check_bus(target: dict[str, Any], bus: BusRef, role_arn: str | None) -> None:
    del role_arn
    if buses.resolve(bus.account_id, bus.region, target["Arn"]) == bus:
        raise buses.validation(f"Target {target['Id']} cannot be the event bus of its own rule.")


def _deliver_to_bus(app: AppState, job: Job) -> dict[str, Any] | None:
    from stratum.services.events import delivery

    ref = buses.resolve(job.account_id, job.region, job.target["Arn"])
    try:
        event = _bus_input(job)
        role = job.target.get("RoleArn")
        identity = SESSIONS.identity(app, role) if role else account_identity(job.account_id)
        with app.db.begin() as conn:
            bus = buses.get_bus(conn, ref)
            if role or ref.account_id != job.account_id:
                ctx = _context(app, "events", "PutEvents", ref.region, identity)
                ctx.authorize("events:PutEvents", ref.arn, resource_account=ref.account_id,
                              resource_policy=bus.get("policy") if bus else None,
                              context={"events:source": event["source"], "events:detail-type": event["detail-type"]})
            if bus is None:
                raise buses.not_found(ref)
            event_id = delivery.accept(conn, ref, event)
            job.complete(conn, {"EventId": event_id, "EventBusArn": ref.arn})
    except ServiceError as exc:
        raise TargetError.of(exc) from None
    return None


def _bus_input(job: Job) -> dict[str, Any]:
    """A bus receives the event itself; a transformed input must still be an event (its source,
    detail-type and detail; the rest of the envelope is the original event's)."""
    if not any(job.target.get(k) is not None for k in ("Input", "InputPath", "InputTransformer")):
        return job.event
    import json

    try:
        value = json.loads(job.input_text)
    except ValueError:
        raise TargetError("MalformedDetail", "The transformed input is not an event.", False) from None
    if not isinstance(value, dict) or not all(k in value for k in ("source", "detail-type", "detail")):
        raise TargetError("MalformedDetail", "The transformed input is not an event.", False)
    return {**job.event, **{k: value[k] for k in ("source", "detail-type", "detail", "resources") if k in value}}


# ---------------------------------------------------------------------------- SageMaker pipelines
def _check_pipeline(target: dict[str, Any], bus: BusRef, role_arn: str | None) -> None:
    m = _PIPELINE_ARN.match(target["Arn"])
    assert m is not None
    if (m.group(1), m.group(2)) != (bus.region, bus.account_id):
        raise buses.validation(f"Target {target['Id']}: a SageMaker pipeline target must be in the rule's "
                               "account and region.")
    if not (target.get("RoleArn") or role_arn):
        raise buses.validation(f"RoleArn is required for target {target['Id']}.")
    for parameter in (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList") or []:
        value = parameter["Value"]
        if value.startswith("$") and not transform.valid_path(value):
            raise buses.validation(f"Parameter {parameter['Name']} of target {target['Id']} is not a valid "
                                   "JSON path.")


def pipeline_parameters(target: dict[str, Any], event: dict[str, Any]) -> list[dict[str, str]]:
    """PipelineParameterList with dynamic path parameters ("$.detail.x") read from the event."""
    out = []
    for parameter in (target.get("SageMakerPipelineParameters") or {}).get("PipelineParameterList") or []:
        value = parameter["Value"]
        if value.startswith("$") and transform.valid_path(value):
            found = transform.select(event, value)
            value = "" if found is None else found if isinstance(found, str) else _json(found)
        out.append({"Name": parameter["Name"], "Value": value})
    return out


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def _deliver_to_pipeline(app: AppState, job: Job) -> dict[str, Any] | None:
    role = job.acting_role
    assert role is not None
    identity = SESSIONS.identity(app, role)
    ctx = _context(app, "sagemaker", "StartPipelineExecution", job.region, identity)
    params: dict[str, Any] = {"PipelineName": job.target["Arn"], "ClientRequestToken": job.delivery_id,
                              "PipelineParameters": pipeline_parameters(job.target, job.event)}
    try:
        out = app.providers["sagemaker"].start_pipeline_execution(ctx, params)  # type: ignore[attr-defined]
    except ServiceError as exc:
        raise TargetError.of(exc) from None
    return {"PipelineExecutionArn": out["PipelineExecutionArn"]}


# ---------------------------------------------------------------------------------- API destinations
def _check_api_destination(target: dict[str, Any], bus: BusRef, role_arn: str | None) -> None:
    m = _API_DESTINATION_ARN.match(target["Arn"])
    assert m is not None
    if (m.group(1), m.group(2)) != (bus.region, bus.account_id):
        raise buses.validation(f"Target {target['Id']}: an API destination target must be in the rule's account "
                               "and region.")
    if not (target.get("RoleArn") or role_arn):
        raise buses.validation(f"RoleArn is required for target {target['Id']}.")


def _deliver_to_api_destination(app: AppState, job: Job) -> dict[str, Any] | None:
    from stratum.services.events import destinations

    with app.db.read() as conn:
        destination = destinations.destination_by_arn(conn, job.target["Arn"])
        connection = destinations.connection_by_arn(conn, destination["connection_arn"]) if destination else None
    if destination is None or connection is None:
        raise TargetError("ResourceNotFoundException", f"API destination {job.target['Arn']} does not exist.", False)
    # The role must allow events:InvokeApiDestination on the destination, as on AWS.
    role = job.acting_role
    assert role is not None
    ctx = _context(app, "events", "InvokeApiDestination", job.region, SESSIONS.identity(app, role))
    try:
        ctx.authorize("events:InvokeApiDestination", destination["arn"], resource_account=destination["account_id"])
    except ServiceError as exc:
        raise TargetError.of(exc) from None
    if connection["state"] != "AUTHORIZED":
        raise TargetError("ConnectionDeauthorized", f"Connection {connection['arn']} is {connection['state']}.", False)
    try:
        return destinations.deliver(app, destination, connection, job.target, job.input_text)
    except destinations.DeliveryFailed as exc:
        raise TargetError(exc.code, exc.message, exc.retryable) from None


# --------------------------------------------------------------------------------- Lambda functions
def _check_function(target: dict[str, Any], bus: BusRef, role_arn: str | None) -> None:
    m = _FUNCTION_ARN.match(target["Arn"])
    assert m is not None
    if m.group(1) != bus.region:
        raise buses.validation(f"Target {target['Id']}: a Lambda function target must be in the rule's region.")


def _deliver_to_function(app: AppState, job: Job) -> dict[str, Any] | None:
    """An asynchronous (Event) invocation as events.amazonaws.com, which the function's resource
    policy must allow (AddPermission with the rule's ARN as SourceArn), as on AWS; the Lambda
    service then owns the invocation and its retries."""
    from stratum.functions import ServicePrincipal, invoke

    caller = ServicePrincipal(EVENTS_PRINCIPAL, source_arn=job.rule_arn, source_account=job.account_id)
    try:
        result = invoke(app, job.target["Arn"], job.input_text.encode(), "Event", caller, region=job.region)
    except ServiceError as exc:
        raise TargetError.of(exc) from None
    return {"StatusCode": result.status_code, "RequestId": result.request_id}


# -------------------------------------------------------------------------------------- SQS queues
def _check_queue(target: dict[str, Any], bus: BusRef, role_arn: str | None) -> None:
    m = _QUEUE_ARN.match(target["Arn"])
    assert m is not None
    if m.group(1) != bus.region:
        raise buses.validation(f"Target {target['Id']}: an SQS queue target must be in the rule's region.")
    if m.group(3) and not (target.get("SqsParameters") or {}).get("MessageGroupId"):
        raise buses.validation(f"Target {target['Id']}: a FIFO queue target needs SqsParameters.MessageGroupId.")


def _deliver_to_queue(app: AppState, job: Job) -> dict[str, Any] | None:
    """SendMessage as events.amazonaws.com, under the queue's policy, in the transaction that marks
    the delivery done: the event is in the queue exactly once."""
    from stratum.services.events.queue_targets import QueueRefused, send

    with app.db.begin() as conn:
        try:
            message_id = send(conn, job.target["Arn"], job.input_text, rule_arn=job.rule_arn,
                              group_id=(job.target.get("SqsParameters") or {}).get("MessageGroupId"))
        except QueueRefused as refused:
            raise TargetError(refused.code, refused.message, False) from None
        job.complete(conn, {"MessageId": message_id})
    return None


# ------------------------------------------------------------------------------------------ kinds
KINDS: tuple[TargetKind, ...] = (
    TargetKind("event-bus", lambda arn: bool(_BUS_ARN.match(arn)), _check_bus, _deliver_to_bus),
    TargetKind("sagemaker-pipeline", lambda arn: bool(_PIPELINE_ARN.match(arn)), _check_pipeline,
               _deliver_to_pipeline),
    TargetKind("api-destination", lambda arn: bool(_API_DESTINATION_ARN.match(arn)), _check_api_destination,
               _deliver_to_api_destination),
    TargetKind("lambda", lambda arn: bool(_FUNCTION_ARN.match(arn)), _check_function, _deliver_to_function),
    TargetKind("sqs", lambda arn: bool(_QUEUE_ARN.match(arn)), _check_queue, _deliver_to_queue),
)


def kind_of(arn: str) -> TargetKind | None:
    return next((k for k in KINDS if k.recognise(arn)), None)
