"""A function's resource policy: the statements AddPermission writes, as GetPolicy shows them
(pure logic). The policy evaluator reads the same document when someone invokes the function."""

from __future__ import annotations

import json
import re
from typing import Any

from stratum.services.lambda_.names import conflict, invalid, not_found

_ACTION = re.compile(r"(lambda:[*]|lambda:[a-zA-Z]+|[*])")
_SID = re.compile(r"[a-zA-Z0-9-_]{1,100}")
_ACCOUNT = re.compile(r"\d{12}")


def principal(value: str) -> Any:
    """Principal of AddPermission -> the policy's Principal element."""
    if value == "*":
        return "*"
    if _ACCOUNT.fullmatch(value):
        return {"AWS": f"arn:aws:iam::{value}:root"}
    if value.startswith("arn:"):
        return {"AWS": value}
    if re.fullmatch(r"[a-z0-9.-]+\.amazonaws\.com(\.cn)?", value):
        return {"Service": value}
    raise invalid("The provided principal was invalid. Please check the principal and try again.")


def statement(params: dict[str, Any], resource: str) -> dict[str, Any]:
    sid, action = params["StatementId"], params["Action"]
    if not _SID.fullmatch(sid):
        raise invalid(f"1 validation error detected: Value '{sid}' at 'statementId' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_]+)")
    if not _ACTION.fullmatch(action):
        raise invalid(f"1 validation error detected: Value '{action}' at 'action' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])")
    condition: dict[str, dict[str, str]] = {}
    if params.get("SourceAccount"):
        condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = params["SourceAccount"]
    if params.get("PrincipalOrgID"):
        condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = params["PrincipalOrgID"]
    if params.get("EventSourceToken"):
        condition.setdefault("StringEquals", {})["lambda:EventSourceToken"] = params["EventSourceToken"]
    if params.get("FunctionUrlAuthType"):
        condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = params["FunctionUrlAuthType"]
    if params.get("SourceArn"):
        condition["ArnLike"] = {"AWS:SourceArn": params["SourceArn"]}
    out: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Principal": principal(params["Principal"]),
                           "Action": action, "Resource": resource}
    if condition:
        out["Condition"] = condition
    return out


def add(statements: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    if any(s.get("Sid") == new["Sid"] for s in statements):
        raise conflict("The statement id (sid) provided already exists. Please choose a new statement id, or "
                       "remove the existing statement.")
    return [*statements, new]


def remove(statements: list[dict[str, Any]], sid: str, resource: str) -> list[dict[str, Any]]:
    kept = [s for s in statements if not (s.get("Sid") == sid and s.get("Resource") == resource)]
    if len(kept) == len(statements):
        raise not_found(f"Statement {sid} is not found in resource policy.")
    return kept


def for_resource(statements: list[dict[str, Any]], resource: str) -> list[dict[str, Any]]:
    return [s for s in statements if s.get("Resource") == resource]


def document(statements: list[dict[str, Any]], policy_id: str = "default") -> str:
    return json.dumps({"Version": "2012-10-17", "Id": policy_id, "Statement": statements}, separators=(",", ":"))
