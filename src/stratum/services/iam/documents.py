"""Policy documents' grammar: the check every call that stores one makes (MalformedPolicyDocument).

A pure function of the request's parameters, so for large bodies the server runs it in its parser
process (server.parsing_process.PRECHECKS) and the provider only replays the outcome where the
check belongs in its order (after authorization): ``check``.
"""

from __future__ import annotations

from typing import Any

from stratum.policy import MalformedPolicyDocument, parse_policy
from stratum.protocol.errors import ServiceError
from stratum.server.context import RequestContext
from stratum.services.iam import limits


def check_document(document: str, kind: str) -> None:
    if kind == "trust":
        limits.check_trust_policy(document)
    try:
        parse_policy(document, kind=kind)
    except MalformedPolicyDocument as exc:
        raise ServiceError("MalformedPolicyDocument", str(exc), 400) from None


def check(ctx: RequestContext, document: str, kind: str) -> None:
    """check_document, or the outcome the parser process found for this request."""
    if ctx.prechecked:
        ctx.replay_precheck()
    else:
        check_document(document, kind)


# Prechecks (parameters -> None or ServiceError), one per operation that stores a document.
def identity_policy(params: dict[str, Any]) -> None:
    check_document(params["PolicyDocument"], "identity")


def trust_policy(params: dict[str, Any]) -> None:
    check_document(params["PolicyDocument"], "trust")


def role_trust_policy(params: dict[str, Any]) -> None:
    check_document(params["AssumeRolePolicyDocument"], "trust")
