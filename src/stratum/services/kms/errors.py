"""KMS's error vocabulary, with the messages KMS sends."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError


def not_found(message: str) -> ServiceError:
    return ServiceError("NotFoundException", message)


def key_not_found(arn: str) -> ServiceError:
    return not_found(f"Key '{arn}' does not exist")


def alias_not_found(alias_arn: str) -> ServiceError:
    return not_found(f"Alias {alias_arn} is not found.")


def invalid_key_id(key_id: str) -> ServiceError:
    return not_found(f"Invalid keyId {key_id}")


def validation(message: str) -> ServiceError:
    return ServiceError("ValidationException", message)


def disabled(arn: str) -> ServiceError:
    return ServiceError("DisabledException", f"{arn} is disabled.")


def invalid_state(message: str) -> ServiceError:
    return ServiceError("KMSInvalidStateException", message)


def pending_deletion(arn: str) -> ServiceError:
    return invalid_state(f"{arn} is pending deletion.")


def invalid_ciphertext() -> ServiceError:
    # KMS deliberately says nothing about why: wrong context, wrong key or tampered bytes look alike.
    return ServiceError("InvalidCiphertextException", "")


def incorrect_key() -> ServiceError:
    return ServiceError("IncorrectKeyException", "The key ID in the request does not identify a CMK that can "
                        "perform this operation.")


def invalid_key_usage(message: str) -> ServiceError:
    return ServiceError("InvalidKeyUsageException", message)


def not_authorized(message: str) -> ServiceError:
    return ServiceError("NotAuthorizedException", message)


def malformed_policy(message: str) -> ServiceError:
    return ServiceError("MalformedPolicyDocumentException", message)


def unsupported(message: str) -> ServiceError:
    return ServiceError("UnsupportedOperationException", message)


def already_exists(message: str) -> ServiceError:
    return ServiceError("AlreadyExistsException", message)


def limit_exceeded(message: str) -> ServiceError:
    return ServiceError("LimitExceededException", message)


def tag_error(message: str) -> ServiceError:
    return ServiceError("TagException", message)


def invalid_marker() -> ServiceError:
    return ServiceError("InvalidMarkerException", "Invalid marker")


def dry_run() -> ServiceError:
    return ServiceError("DryRunOperationException", "The request would have succeeded, but the DryRun option "
                        "is set.")


def internal(message: str) -> ServiceError:
    return ServiceError("KMSInternalException", message, 500, sender_fault=False)
