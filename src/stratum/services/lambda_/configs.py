"""FunctionConfiguration: built and checked from CreateFunction / UpdateFunctionConfiguration
parameters, and shown as the API shows it (pure logic)."""

from __future__ import annotations

import re
from typing import Any

from stratum.functions.runtime import COMMAND_KEY, LAYER_CODE_KEY
from stratum.services.lambda_.names import LATEST, NAME, function_arn, invalid

# python3.8 is the SageMaker SDK's default for its Lambda helper (AWS has retired it for new functions).
PYTHON_RUNTIMES = ("python3.8", "python3.9", "python3.10", "python3.11", "python3.12", "python3.13")
# Functions declared with `stratum lambda register --command` (a command per invocation).
COMMAND_RUNTIMES = ("provided.al2023", "provided.al2", "provided")
MIN_MEMORY, MAX_MEMORY = 128, 10240
MAX_TIMEOUT = 900
_ROLE = re.compile(r"arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+")
_HANDLER = re.compile(r"[^\s]{1,128}")
RESERVED_VARIABLES = frozenset({
    "_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"})
HIDDEN = (COMMAND_KEY, LAYER_CODE_KEY)  # kept in the stored config, never shown


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise invalid(f"1 validation error detected: Value '{name}' at 'functionName' failed to satisfy "
                      "constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ (at most 64)")


def check_role(role: str) -> None:
    if not _ROLE.fullmatch(role):
        raise invalid(f"1 validation error detected: Value '{role}' at 'role' failed to satisfy constraint: "
                      "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?"
                      "[a-zA-Z_0-9+=,.@\\-_/]+")


def apply(config: dict[str, Any], params: dict[str, Any], name: str) -> dict[str, Any]:
    """``config`` updated with the configuration parameters of a request (checked)."""
    out = dict(config)
    if "Runtime" in params:
        runtime = params["Runtime"]
        if runtime not in PYTHON_RUNTIMES and not (runtime in COMMAND_RUNTIMES and out.get("StratumCommand")):
            raise invalid(f"Value {runtime} at 'runtime' is not supported by Stratum: it runs Python functions "
                          f"({', '.join(PYTHON_RUNTIMES)}).")
        out["Runtime"] = runtime
    if "Handler" in params:
        if not _HANDLER.fullmatch(params["Handler"]):
            raise invalid(f"1 validation error detected: Value '{params['Handler']}' at 'handler' failed to satisfy "
                          "constraint: Member must satisfy regular expression pattern: [^\\s]+")
        out["Handler"] = params["Handler"]
    if "Role" in params:
        check_role(params["Role"])
        out["Role"] = params["Role"]
    if "Description" in params:
        out["Description"] = params["Description"]
    if "Timeout" in params:
        if not 1 <= int(params["Timeout"]) <= MAX_TIMEOUT:
            raise invalid(f"1 validation error detected: Value '{params['Timeout']}' at 'timeout' failed to satisfy "
                          f"constraint: Member must have value between 1 and {MAX_TIMEOUT}")
        out["Timeout"] = int(params["Timeout"])
    if "MemorySize" in params:
        if not MIN_MEMORY <= int(params["MemorySize"]) <= MAX_MEMORY:
            raise invalid(f"1 validation error detected: Value '{params['MemorySize']}' at 'memorySize' failed to "
                          f"satisfy constraint: Member must have value between {MIN_MEMORY} and {MAX_MEMORY}")
        out["MemorySize"] = int(params["MemorySize"])
    if "Environment" in params:
        variables = dict((params["Environment"] or {}).get("Variables") or {})
        reserved = sorted(k for k in variables if k in RESERVED_VARIABLES)
        if reserved:
            raise invalid("Lambda was unable to configure your environment variables because the environment "
                          "variables you have provided contains reserved keys that are currently not supported for "
                          f"modification. Reserved keys used in this request: {', '.join(reserved)}")
        out["Environment"] = {"Variables": variables}
    if "EphemeralStorage" in params:
        out["EphemeralStorage"] = params["EphemeralStorage"]
    if "TracingConfig" in params:
        out["TracingConfig"] = {"Mode": params["TracingConfig"].get("Mode", "PassThrough")}
    if "Architectures" in params:
        out["Architectures"] = list(params["Architectures"])
    if "LoggingConfig" in params:
        logging = {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}", **params["LoggingConfig"]}
        out["LoggingConfig"] = logging
    if "DeadLetterConfig" in params:
        out["DeadLetterConfig"] = params["DeadLetterConfig"]
    if "KMSKeyArn" in params:
        out["KMSKeyArn"] = params["KMSKeyArn"]
    return out


def defaults(name: str) -> dict[str, Any]:
    return {"Description": "", "Timeout": 3, "MemorySize": 128, "PackageType": "Zip",
            "Architectures": ["x86_64"], "EphemeralStorage": {"Size": 512},
            "TracingConfig": {"Mode": "PassThrough"},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{name}"},
            "State": "Active", "LastUpdateStatus": "Successful"}


def view(row: dict[str, Any], *, qualified_latest: bool = False) -> dict[str, Any]:
    """FunctionConfiguration of a stored version."""
    version = row["version"]
    qualifier = None if version == LATEST and not qualified_latest else version
    config = {k: v for k, v in row["config"].items() if k not in HIDDEN}
    return {"FunctionName": row["function_name"],
            "FunctionArn": function_arn(row["region"], row["account_id"], row["function_name"], qualifier),
            "Version": version, **config}
