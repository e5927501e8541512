"""The hosting errors, worded like SageMaker's."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message, 400)


def endpoint_not_found(arn: str) -> ServiceError:
    return validation(f'Could not find endpoint "{arn}".')


def config_not_found(arn: str) -> ServiceError:
    return validation(f'Could not find endpoint configuration "{arn}".')


def endpoint_exists(arn: str) -> ServiceError:
    return validation(f'Cannot create already existing endpoint "{arn}".')


def config_exists(arn: str) -> ServiceError:
    return validation(f'Cannot create already existing endpoint configuration "{arn}".')


def in_progress(arn: str) -> ServiceError:
    return validation(f'Cannot update in-progress endpoint "{arn}".')


def failed_endpoint(arn: str) -> ServiceError:
    return validation(f'Cannot update failed endpoint "{arn}".')
