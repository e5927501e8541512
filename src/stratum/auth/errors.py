"""Authentication failures, worded per protocol family exactly as AWS front ends word them.

JSON-protocol services (SageMaker, KMS, EventBridge...) answer with the ``...Exception`` codes and
HTTP 400; query services (STS, IAM) with the bare codes and 403; S3 with its own vocabulary.
"""

from __future__ import annotations

from stratum.protocol.errors import ServiceError

# generic code -> (json/rest-json code, query code, s3 code)
_CODES: dict[str, tuple[str, str, str]] = {
    "MissingAuthenticationToken": ("MissingAuthenticationTokenException", "MissingAuthenticationToken", "AccessDenied"),
    "InvalidClientTokenId": ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId"),
    "SignatureDoesNotMatch": ("InvalidSignatureException", "SignatureDoesNotMatch", "SignatureDoesNotMatch"),
    "IncompleteSignature": ("IncompleteSignatureException", "IncompleteSignature", "AuthorizationHeaderMalformed"),
    "ExpiredToken": ("ExpiredTokenException", "ExpiredToken", "ExpiredToken"),
    "RequestExpired": ("InvalidSignatureException", "RequestExpired", "RequestTimeTooSkewed"),
}

MESSAGES = {
    "MissingAuthenticationToken": "Request is missing Authentication Token",
    "InvalidClientTokenId": "The security token included in the request is invalid.",
    "SignatureDoesNotMatch": ("The request signature we calculated does not match the signature you provided. "
                              "Check your AWS Secret Access Key and signing method. Consult the service "
                              "documentation for details."),
    "ExpiredToken": "The security token included in the request is expired",
}

S3_MESSAGES = {
    "InvalidClientTokenId": "The AWS Access Key Id you provided does not exist in our records.",
    "MissingAuthenticationToken": "Access Denied",
    "ExpiredToken": "The provided token has expired.",
}


def auth_error(generic: str, protocol: str, message: str | None = None, status: int | None = None) -> ServiceError:
    """``status`` is the verifier's own status for codes outside the table (e.g. BadDigest: 400)."""
    codes = _CODES.get(generic)
    if codes is None and status is not None:
        return ServiceError(generic, message or generic, status)
    if protocol == "rest-xml":
        code = codes[2] if codes else generic
        msg = message or S3_MESSAGES.get(generic) or MESSAGES.get(generic, generic)
        # S3 answers a malformed header and an expired session token with 400, the rest with 403.
        return ServiceError(code, msg, 400 if code in ("AuthorizationHeaderMalformed", "ExpiredToken") else 403)
    if protocol == "query":
        code = codes[1] if codes else generic
        return ServiceError(code, message or MESSAGES.get(generic, generic), 403)
    code = codes[0] if codes else generic
    return ServiceError(code, message or MESSAGES.get(generic, generic), 403 if generic == "MissingAuthenticationToken" else 400)
