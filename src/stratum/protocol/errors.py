"""AWS-style service errors raised by providers and rendered by the protocol serializers."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error an AWS client understands: a code, a message, an HTTP status and optional fields."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        sender_fault: bool = True,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.sender_fault = sender_fault
        self.fields = fields or {}
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"ServiceError({self.code!r}, {self.message!r}, {self.status})"


def validation_error(message: str, code: str = "ValidationException") -> ServiceError:
    return ServiceError(code, message, 400)


def not_found(message: str, code: str = "ResourceNotFound") -> ServiceError:
    return ServiceError(code, message, 400)


def access_denied(message: str, code: str = "AccessDeniedException", status: int = 400) -> ServiceError:
    return ServiceError(code, message, status)


def internal_error(message: str = "We encountered an internal error. Please try again.") -> ServiceError:
    return ServiceError("InternalFailure", message, 500, sender_fault=False)
