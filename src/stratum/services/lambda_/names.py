"""Function names, ARNs and qualifiers as the Lambda API accepts them (pure logic).

A FunctionName parameter may be a name (``my-function``), a name with a qualifier
(``my-function:1``, ``my-function:prod``), a partial ARN (``123456789012:function:my-function``)
or a full ARN, qualified or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stratum.protocol.errors import ServiceError

LATEST = "$LATEST"
NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
QUALIFIER = re.compile(r"\$LATEST|[a-zA-Z0-9_-]{1,128}")
VERSION = re.compile(r"[0-9]{1,10}")
ALIAS = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9_-]{1,128}")
_FULL = re.compile(r"arn:(aws[a-zA-Z-]*):lambda:([a-z]{2}(?:-gov)?-[a-z]+-\d{1}):(\d{12}):function:"
                   r"([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?")
_PARTIAL = re.compile(r"(\d{12}):function:([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?")
_SHORT = re.compile(r"([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?")


def invalid(message: str) -> ServiceError:
    return ServiceError("InvalidParameterValueException", message, 400, fields={"Type": "User"})


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFoundException", message, 404, fields={"Type": "User"})


def precondition_failed() -> ServiceError:
    return ServiceError("PreconditionFailedException", "The Revision Id provided does not match the latest Revision "
                        "Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id", 412,
                        fields={"Type": "User"})


def conflict(message: str) -> ServiceError:
    return ServiceError("ResourceConflictException", message, 409, fields={"Type": "User"})


@dataclass(frozen=True)
class FunctionRef:
    account_id: str
    region: str
    name: str
    qualifier: str | None  # a version, "$LATEST" or an alias name; None: unqualified

    @property
    def arn(self) -> str:
        return function_arn(self.region, self.account_id, self.name)

    @property
    def qualified_arn(self) -> str:
        return self.arn if self.qualifier is None else f"{self.arn}:{self.qualifier}"


def function_arn(region: str, account_id: str, name: str, qualifier: str | None = None) -> str:
    arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
    return arn if qualifier is None else f"{arn}:{qualifier}"


def parse_function_name(value: str, account_id: str, region: str, qualifier: str | None = None, *,
                        allow_qualifier: bool = True) -> FunctionRef:
    """The function a FunctionName (and Qualifier) parameter designate, as Lambda reads them."""
    m = _FULL.fullmatch(value)
    if m is not None:
        if m.group(2) != region:
            raise invalid(f"Functions from '{m.group(2)}' are not reachable in this region ('{region}')")
        account, name, derived = m.group(3), m.group(4), m.group(5)
    elif (m := _PARTIAL.fullmatch(value)) is not None:
        account, name, derived = m.group(1), m.group(2), m.group(3)
    elif (m := _SHORT.fullmatch(value)) is not None:
        account, name, derived = account_id, m.group(1), m.group(2)
    else:
        raise invalid(f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy "
                      "constraint: Member must satisfy regular expression pattern: "
                      "(arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?"
                      "([a-zA-Z0-9-_\\.]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?")
    if not NAME.fullmatch(name):
        raise invalid(f"Function name '{name}' must be 1 to 64 letters, digits, hyphens or underscores.")
    if derived is not None and qualifier is not None and derived != qualifier:
        raise invalid("The derived qualifier from the function name does not match the specified qualifier.")
    final = derived if derived is not None else qualifier
    if final is not None and not allow_qualifier:
        raise invalid(f"Unsupported qualifier '{final}' for this operation: use the unqualified function name.")
    if final is not None and not QUALIFIER.fullmatch(final):
        raise invalid(f"Invalid qualifier '{final}'.")
    return FunctionRef(account, region, name, final)


def parse_resource_arn(value: str, region: str) -> FunctionRef:
    """The ARN of TagResource / UntagResource / ListTags: an unqualified function ARN."""
    m = _FULL.fullmatch(value)
    if m is None or m.group(2) != region:
        raise invalid(f"Invalid function ARN: {value}")
    if m.group(5) is not None:
        raise invalid("Tags are supported only on the unqualified function ARN.")
    return FunctionRef(m.group(3), m.group(2), m.group(4), None)


def handler_parts(handler: str) -> tuple[str, str]:
    """``pkg/module.function`` or ``pkg.module.function`` -> (module path, function name)."""
    module, _, func = handler.rpartition(".")
    if not module or not func:
        raise invalid(f"Bad handler '{handler}': use module.function")
    return module.replace("/", "."), func
