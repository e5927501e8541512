"""The errors SageMaker Runtime answers, with AWS's wording where it is known."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError

# InvokeEndpoint's Body limit (the model's max); AWS's front end refuses more with a bare 413.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationError", message, 400)


def endpoint_not_found(name: str, account: str) -> ServiceError:
    return validation(f"Endpoint {name} of account {account} not found.")


def payload_too_large() -> ServiceError:
    # No error code on AWS: botocore names the error by its status, "An error occurred (413)".
    return ServiceError("413", f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes.", 413)


def throttled(endpoint: str, variant: str, limit: int) -> ServiceError:
    """A serverless variant has MaxConcurrency invocations in flight already."""
    return ServiceError("ThrottlingException", f"Variant {variant} of endpoint {endpoint} is processing its "
                        f"MaxConcurrency ({limit}) of concurrent invocations. Retry the request.", 400)


def service_unavailable(message: str) -> ServiceError:
    return ServiceError("ServiceUnavailable", message, 503, sender_fault=False)


def log_group(name: str) -> str:
    return f"/aws/sagemaker/Endpoints/{name}"


def log_group_arn(region: str, account: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{account}:log-group:{log_group(name)}"


def model_error(region: str, account: str, endpoint: str, container: str, status: int, message: str) -> ServiceError:
    """A container answered non-2xx (``status``), or did not answer at all (status 0): ModelError,
    HTTP 424, with the container's own status and body."""
    kind = "client" if 400 <= status < 500 else "server"
    console = (f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
               f"#logEventViewer:group={log_group(endpoint)}")
    text = (f'Received {kind} error ({status}) from {container} with message "{message}". '
            f"See {console} in account {account} for more information.")
    fields: dict[str, object] = {"LogStreamArn": log_group_arn(region, account, endpoint)}
    if status:
        fields["OriginalStatusCode"] = status
        fields["OriginalMessage"] = message
    return ServiceError("ModelError", text, 424, fields=fields)


def timed_out_message(container: str) -> str:
    return (f"Your invocation timed out while waiting for a response from container {container}. Review the "
            "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again.")
