"""Whether an AWS service acting on its own (``events.amazonaws.com`` delivering a rule's event)
may act on a resource: only a resource policy can allow it, with the resource that made it act as
``aws:SourceArn`` and that resource's account as ``aws:SourceAccount``."""

from __future__ import annotations

from typing import Any

from stratum.policy import AuthzRequest, Caller, PolicySet, evaluate, parse_policy


def service_allowed(service: str, action: str, resource: str, resource_account: str, policy: str | None, *,
                    source_arn: str | None = None, source_account: str | None = None) -> bool:
    if not policy:
        return False
    context: dict[str, Any] = {}
    if source_arn:
        context["aws:SourceArn"] = source_arn
    if source_account:
        context["aws:SourceAccount"] = source_account
    decision = evaluate(AuthzRequest(caller=Caller(arn=service, account="", kind="service", service=service),
                                     action=action, resource=resource, resource_account=resource_account,
                                     context=context),
                        PolicySet(resource=parse_policy(policy, kind="resource"), resource_policy_required=True))
    return bool(decision.allowed)
