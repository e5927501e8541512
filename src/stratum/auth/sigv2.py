"""S3 query-string authentication version 2 (AWSAccessKeyId / Signature / Expires).

botocore still presigns S3 URLs this way unless told ``signature_version='s3v4'``, so
``generate_presigned_url`` only works out of the box if we accept it. The string to sign is
built by botocore's own HmacV1 canonicalization, so both ends agree by construction.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote

from botocore.auth import HmacV1Auth
from botocore.awsrequest import HTTPHeaders
from botocore.credentials import Credentials

from stratum.auth.sigv4 import SigV4Error

_AUTH_PARAMS = {"AWSAccessKeyId", "Signature", "Expires", "x-amz-security-token"}


@dataclass(frozen=True)
class QueryV2:
    access_key: str
    signature: str
    expires: int
    security_token: str | None


def is_query_v2(query_string: str) -> bool:
    return bool(query_string) and "AWSAccessKeyId=" in query_string and "Signature=" in query_string


def parse_query_v2(query_string: str) -> QueryV2:
    params = dict(parse_qsl(query_string, keep_blank_values=True))
    try:
        return QueryV2(params["AWSAccessKeyId"], params["Signature"], int(params["Expires"]),
                       params.get("x-amz-security-token"))
    except (KeyError, ValueError):
        raise SigV4Error("AuthorizationQueryParametersError",
                         "Query-string authentication requires the Signature, Expires and AWSAccessKeyId "
                         "parameters") from None


def check_expires(info: QueryV2, now: float) -> None:
    """A version 2 presigned URL is valid until its ``Expires`` (seconds since the epoch)."""
    if now > info.expires:
        raise SigV4Error("AccessDenied", "Request has expired")


class _ExpiresSigner(HmacV1Auth):
    """Query auth signs the Expires value where header auth signs the Date."""

    def __init__(self, credentials: Credentials, expires: int) -> None:
        super().__init__(credentials)
        self._expires_value = expires

    def _get_date(self) -> str:
        return str(self._expires_value)


def _auth_paths(path: str) -> list[str]:
    """Candidate canonical resources for a path-style ``path`` (``/bucket/key``, still encoded).

    The canonical resource always names the bucket, as a path-style URL does (the server hands a
    virtual-hosted request's path here with its bucket prepended). A bucket-level request is signed
    as ``/bucket/`` by botocore (its ``auth_path``) whether the URL was ``/bucket`` or
    ``bucket.host/``; AWS's own rule for a path-style URL takes the path as sent, so ``/bucket`` is
    accepted too.
    """
    path = path or "/"
    if path != "/" and "/" not in path[1:]:
        return [path + "/", path]
    return [path]


def verify_query_v2(info: QueryV2, secret_key: str, method: str, raw_path: str, query_string: str,
                    headers: Mapping[str, str], *, now: float | None = None, clock_checked: bool = False) -> None:
    """Check the signature (and, unless ``clock_checked``, ``Expires``) of a version 2 presigned
    request. ``raw_path`` is the path-style path (``/bucket/key`` as sent, percent-encoded)."""
    if not clock_checked:
        check_expires(info, now if now is not None else time.time())
    # The query as sent minus the authentication parameters: the canonical resource keeps the
    # sub-resources (``?location``, ``?uploads``, ``?versionId=...``) in their wire form.
    kept = [piece for piece in query_string.split("&")
            if piece and unquote(piece.partition("=")[0]) not in _AUTH_PARAMS]
    signer_headers = HTTPHeaders()
    for name in ("content-md5", "content-type"):
        if name in headers:
            signer_headers[name] = headers[name]
    for name, value in headers.items():
        if name.startswith("x-amz-") and name not in ("x-amz-content-sha256", "x-amz-date"):
            signer_headers[name] = value
    if info.security_token:
        signer_headers["x-amz-security-token"] = info.security_token
    signer = _ExpiresSigner(Credentials(info.access_key, secret_key), info.expires)
    split = SplitResult("http", "", raw_path or "/", "&".join(kept), "")
    for auth_path in _auth_paths(raw_path):
        expected = signer.sign_string(signer.canonical_string(method, split, signer_headers, auth_path=auth_path))
        if hmac.compare_digest(expected, info.signature):
            return
    raise SigV4Error("SignatureDoesNotMatch",
                     "The request signature we calculated does not match the signature you provided. "
                     "Check your key and signing method.")
