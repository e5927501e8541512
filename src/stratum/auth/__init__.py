"""Request authentication: AWS Signature Version 4 verification and aws-chunked bodies."""

from stratum.auth.chunked import compute_checksum, decode_aws_chunked
from stratum.auth.sigv4 import (
    SignedRequestInfo,
    SigV4Error,
    credential_scope,
    derive_signing_key,
    parse_auth,
    peek_scope,
    verify,
)

__all__ = [
    "SigV4Error",
    "SignedRequestInfo",
    "compute_checksum",
    "credential_scope",
    "decode_aws_chunked",
    "derive_signing_key",
    "parse_auth",
    "peek_scope",
    "verify",
]
