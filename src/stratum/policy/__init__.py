"""IAM policy language: parsing, validation and authorization decisions.

Pure and side-effect free: the server builds :class:`AuthzRequest` and :class:`PolicySet`
objects from its own state and calls :func:`evaluate`.
"""

from stratum.policy.context import AuthzRequest, Caller
from stratum.policy.document import POLICY_KINDS, Policy, Statement, parse_policy
from stratum.policy.errors import MalformedPolicyDocument
from stratum.policy.evaluator import (
    ALLOWED,
    EXPLICIT_DENY,
    IDENTITY_BASED,
    IMPLICIT_DENY,
    PERMISSIONS_BOUNDARY,
    RESOURCE_BASED,
    SERVICE_CONTROL,
    SESSION,
    VPC_ENDPOINT,
    Decision,
    MatchedStatement,
    PolicySet,
    access_denied_message,
    evaluate,
)

__all__ = [
    "ALLOWED",
    "EXPLICIT_DENY",
    "IDENTITY_BASED",
    "IMPLICIT_DENY",
    "PERMISSIONS_BOUNDARY",
    "POLICY_KINDS",
    "RESOURCE_BASED",
    "SERVICE_CONTROL",
    "SESSION",
    "VPC_ENDPOINT",
    "AuthzRequest",
    "Caller",
    "Decision",
    "MalformedPolicyDocument",
    "MatchedStatement",
    "Policy",
    "PolicySet",
    "Statement",
    "access_denied_message",
    "evaluate",
    "parse_policy",
]
