"""The errors RAM operations raise, with the codes the RAM API model declares."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError


def _error(code: str, message: str, status: int = 400) -> ServiceError:
    return ServiceError(code, message, status)


def invalid_parameter(message: str) -> ServiceError:
    return _error("InvalidParameterException", message)


def malformed_arn(message: str) -> ServiceError:
    return _error("MalformedArnException", message)


def unknown_resource(message: str) -> ServiceError:
    return _error("UnknownResourceException", message)


def not_permitted(message: str) -> ServiceError:
    return _error("OperationNotPermittedException", message)


def invalid_state(message: str) -> ServiceError:
    return _error("InvalidStateTransitionException", message)


def invalid_next_token(message: str = "The specified value for NextToken is not valid.") -> ServiceError:
    return _error("InvalidNextTokenException", message)


def idempotent_mismatch(token: str, operation: str) -> ServiceError:
    return _error("IdempotentParameterMismatchException",
                  f"The client token {token} was already used for a {operation} request with different parameters.")


def invalid_resource_type(message: str) -> ServiceError:
    return _error("InvalidResourceTypeException", message)


def tag_limit(message: str) -> ServiceError:
    return _error("TagLimitExceededException", message)


def share_not_found(arn: str) -> ServiceError:
    return unknown_resource(f"ResourceShare {arn} could not be found.")


def invitation_not_found(arn: str) -> ServiceError:
    return _error("ResourceShareInvitationArnNotFoundException",
                  f"ResourceShareInvitation {arn} could not be found.")


def invitation_already_accepted(arn: str) -> ServiceError:
    return _error("ResourceShareInvitationAlreadyAcceptedException",
                  f"The invitation {arn} has already been accepted.")


def invitation_already_rejected(arn: str) -> ServiceError:
    return _error("ResourceShareInvitationAlreadyRejectedException",
                  f"The invitation {arn} has already been rejected.")


def invitation_expired(arn: str) -> ServiceError:
    return _error("ResourceShareInvitationExpiredException", f"The invitation {arn} has expired.")
