"""The SageMaker errors pipeline operations raise, worded like the service."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def conflict(message: str) -> ServiceError:
    return ServiceError("ConflictException", message, 400)


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("ResourceLimitExceeded", message, 400)


def not_found(message: str) -> ServiceError:
    return ServiceError("ResourceNotFound", message, 400)


def pipeline_not_found(arn: str) -> ServiceError:
    return not_found(f"Pipeline '{arn}' does not exist.")


def version_not_found(arn: str, version_id: int) -> ServiceError:
    return not_found(f"Pipeline version '{version_id}' of pipeline '{arn}' does not exist.")


def alias_not_found(arn: str, alias: str) -> ServiceError:
    return not_found(f"Pipeline version alias '{alias}' of pipeline '{arn}' does not exist.")


def execution_not_found(arn: str) -> ServiceError:
    return not_found(f"Pipeline execution '{arn}' does not exist.")


def pipeline_exists(name: str) -> ServiceError:
    # Pipeline.upsert() in the SageMaker Python SDK looks for "already exists" in this message
    # (older releases for "Pipeline names must be unique within"): keep both phrases.
    return validation(f"Pipeline names must be unique within an AWS account and region. "
                      f"Pipeline with name ({name}) already exists.")
