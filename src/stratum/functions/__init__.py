"""The Lambda runtime: invocations of the functions the Lambda API stores (services.lambda_).

``invoke`` is the one entry point for everything that invokes a function — the Lambda API's
Invoke, pipeline Lambda steps (as the pipeline's role), EventBridge targets (as the rule's
role or as ``events.amazonaws.com`` allowed by the function's resource policy)::

    from stratum.functions import invoke, ServicePrincipal
    result = invoke(app, "arn:aws:lambda:us-east-1:111122223333:function:fn", b'{"a": 1}', "Event",
                    ServicePrincipal("events.amazonaws.com", source_arn=rule_arn, source_account=account))
    result.status_code  # 202

It authorizes lambda:InvokeFunction (the caller's policies and the function's resource policy),
then runs the function (RequestResponse: 200 with the result; FunctionError "Unhandled" and the
runtime's error shape when it failed), queues it durably (Event: 202) or only checks (DryRun: 204).
Errors are ServiceErrors with Lambda's codes (ResourceNotFoundException, AccessDeniedException,
InvalidRequestContentException, ...).
"""

from __future__ import annotations

import json
import threading
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from stratum.functions.access import INVOKE, Invoker, ServicePrincipal, authorize, role_identity
from stratum.functions.runtime import InvokeResult, Runtime, Target
from stratum.protocol.errors import ServiceError

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext
    from stratum.services.lambda_.names import FunctionRef

__all__ = ["INVOKE", "InvokeResult", "Invoker", "ServicePrincipal", "Target", "invoke", "resolve_target",
           "role_identity", "runtime_for"]

MAX_SYNC_PAYLOAD = 6 * 1024 * 1024
MAX_EVENT_PAYLOAD = 1024 * 1024
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")

_runtimes: weakref.WeakKeyDictionary[Any, Runtime] = weakref.WeakKeyDictionary()
_runtimes_lock = threading.Lock()


def runtime_for(app: AppState) -> Runtime:
    """The server's runtime (created once, and registered as a background service)."""
    with _runtimes_lock:
        runtime = _runtimes.get(app)
        if runtime is None:
            runtime = _runtimes[app] = Runtime(app)
            app.add_background(runtime)
        return runtime


def resolve_target(app: AppState, ref: FunctionRef) -> tuple[Target, str | None]:
    """The version ``ref`` runs and the function's resource policy document (None without one)."""
    from stratum.services.lambda_ import catalog
    from stratum.services.lambda_.permissions import document

    with app.db.read() as conn:
        function = catalog.get_function(conn, ref)
        row, _alias = catalog.resolve(conn, ref)
    policy = document(function["policy"]) if function["policy"] else None
    return Target(ref.account_id, ref.region, ref.name, row["version"], row["config"], row["code_sha256"],
                  ref.qualified_arn), policy


def _caller_account(caller: Invoker | RequestContext) -> tuple[str | None, str | None]:
    from stratum.auth.identity import Identity

    if isinstance(caller, ServicePrincipal):
        return caller.source_account, None
    if isinstance(caller, Identity):
        return caller.account_id, None
    return caller.account_id, caller.region


def invoke(app: AppState, function_arn: str, payload: bytes, invocation_type: str = "RequestResponse",
           caller: Invoker | RequestContext | None = None, *, qualifier: str | None = None,
           log_type: str | None = None, region: str | None = None) -> InvokeResult:
    """Invoke a function as ``caller`` (an Identity, a ServicePrincipal, or the RequestContext of
    an API call). ``function_arn`` may be a full ARN (qualified or not) or, with an Identity or a
    context, a name in the caller's account."""
    from stratum.services.lambda_.names import invalid, parse_function_name

    if caller is None:
        raise ValueError("invoke needs a caller")
    if invocation_type not in INVOCATION_TYPES:
        raise invalid(f"1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to "
                      "satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]")
    account, ctx_region = _caller_account(caller)
    region = region or ctx_region or app.settings.region
    ref = parse_function_name(function_arn, account or "", region, qualifier)
    try:
        target, policy = resolve_target(app, ref)
    except ServiceError:
        # The caller learns the function does not exist only when it may invoke such a function.
        authorize(app, caller, INVOKE, ref.qualified_arn, ref.account_id, None, region)
        raise
    authorize(app, caller, INVOKE, ref.qualified_arn, ref.account_id, policy, region)
    limit = MAX_EVENT_PAYLOAD if invocation_type == "Event" else MAX_SYNC_PAYLOAD
    if len(payload) > limit:
        raise ServiceError("RequestTooLargeException", f"Request must be smaller than {limit} bytes for the "
                           "InvokeFunction operation", 413, fields={"Type": "User"})
    if payload:
        try:
            json.loads(payload)
        except ValueError as exc:
            raise ServiceError("InvalidRequestContentException", f"Could not parse request body into json: "
                               f"Could not parse payload into json: {exc}", 400, fields={"Type": "User"}) from None
    if invocation_type == "DryRun":
        return InvokeResult(204, executed_version=None)
    runtime = runtime_for(app)
    from stratum.server.context import RequestContext

    # An Invoke call's own request id is the invocation's (context.aws_request_id, the logs' START
    # line, a dead letter's RequestID), as on Lambda.
    request_id = caller.request_id if isinstance(caller, RequestContext) else str(uuid.uuid4())
    if invocation_type == "Event":
        from stratum.functions.eventqueue import enqueue

        with app.db.begin() as conn:
            enqueue(conn, request_id, ref.account_id, ref.region, ref.name, ref.qualifier, payload)
        runtime.events.wake()
        return InvokeResult(202, request_id=request_id)
    return runtime.run(target, payload, request_id=request_id, tail=log_type == "Tail")
