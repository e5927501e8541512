"""Server-side encryption: which encryption a write gets, and the per-object data keys.

Every object is encrypted at rest with a data key of its own (see ``blobcrypt``):

* SSE-S3 (``AES256``, the default for every object, as S3 does now): the data key is sealed under
  the SSE-S3 root key, which is derived from the server master key.
* SSE-KMS (``aws:kms``): the data key comes from KMS GenerateDataKey, called *as the requester*
  through S3 (``kms:ViaService`` = ``s3.<region>.amazonaws.com``) with the object ARN as encryption
  context (the bucket ARN with an S3 Bucket Key). Reading the object calls KMS Decrypt the same way,
  so only callers the key policy (and, through it, their IAM policies) allows can read it.

The request headers decide; without them the bucket's default encryption does; without that, SSE-S3.
A key id or alias (not an ARN) is resolved in the requester's account, and with no key at all the
requester's AWS managed key ``aws/s3`` is used, as S3 does.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from stratum.protocol.errors import ServiceError
from stratum.server.context import RequestContext

from .catalog import Bucket
from .errors import invalid_argument, malformed_xml
from .naming import bucket_arn, object_arn

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.services.kms.service import KeyService

SSE_S3 = "AES256"
SSE_KMS = "aws:kms"
SSE_DSSE = "aws:kms:dsse"
KMS_CONTEXT_KEY = "aws:s3:arn"
DATA_KEY_BYTES = 32
HEADER_SSE = "s3:x-amz-server-side-encryption"
HEADER_KMS_KEY = "s3:x-amz-server-side-encryption-aws-kms-key-id"
_SSE_S3_AAD = b"stratum-s3-sse-s3-data-key"
_CONTEXT_ERROR = ("The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string holding "
                  "JSON which represents a string-string map")
DEFAULT_CONFIGURATION: dict[str, Any] = {
    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": SSE_S3}, "BucketKeyEnabled": False}]}


def requires_kms_header() -> ServiceError:
    return invalid_argument("Server Side Encryption with AWS KMS managed key requires HTTP header "
                            "x-amz-server-side-encryption : aws:kms", "x-amz-server-side-encryption", "null")


def dsse_not_supported() -> ServiceError:
    return ServiceError("NotImplemented", "Dual-layer server-side encryption (aws:kms:dsse) is not supported by "
                        "this server.", 501)


def kms_error(exc: ServiceError) -> ServiceError:
    """KMS refusals surface in S3's words: AccessDenied as is, the rest as KMS.<code>."""
    if exc.code in ("AccessDenied", "AccessDeniedException") or exc.code.startswith("KMS."):
        return exc
    return ServiceError(f"KMS.{exc.code}", exc.message, exc.status if exc.status >= 500 else 400)


@dataclass(frozen=True)
class Encryption:
    """How one object (or multipart upload) is encrypted; stored as JSON with the row."""

    algorithm: str
    wrapped_key: bytes  # SSE-S3: sealed under the SSE-S3 root key; SSE-KMS: the KMS ciphertext blob
    key_arn: str | None = None
    context: dict[str, str] | None = None  # the KMS encryption context
    bucket_key: bool = False
    # The SSE condition keys of the request that chose this encryption: parts of a multipart upload
    # are authorized as uploads with the encryption their upload was created with.
    condition_keys: dict[str, str] = field(default_factory=dict)

    def to_row(self, *, with_conditions: bool = False) -> dict[str, Any]:
        """The stored form; only multipart uploads keep the request's condition keys."""
        row: dict[str, Any] = {"algorithm": self.algorithm, "wrapped_key": base64.b64encode(self.wrapped_key).decode()}
        if self.key_arn:
            row.update(key_arn=self.key_arn, context=self.context, bucket_key=self.bucket_key)
        if with_conditions and self.condition_keys:
            row["condition_keys"] = self.condition_keys
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> Encryption | None:
        if not row:
            return None
        return cls(row["algorithm"], base64.b64decode(row["wrapped_key"]), row.get("key_arn"), row.get("context"),
                   bool(row.get("bucket_key")), row.get("condition_keys") or {})

    def response_fields(self, *, with_context: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"ServerSideEncryption": self.algorithm}
        if self.algorithm == SSE_KMS:
            out["SSEKMSKeyId"] = self.key_arn
            if self.bucket_key:
                out["BucketKeyEnabled"] = True
            if with_context and self.context:
                out["SSEKMSEncryptionContext"] = base64.b64encode(json.dumps(self.context).encode()).decode()
        return out


@dataclass(frozen=True)
class Requested:
    """The encryption a write asks for, after applying the bucket default."""

    algorithm: str
    kms_key_id: str | None = None
    bucket_key: bool = False
    user_context: dict[str, str] = field(default_factory=dict)
    condition_keys: dict[str, str] = field(default_factory=dict)


def default_rule(bucket: Bucket) -> dict[str, Any]:
    rules = (bucket.encryption or DEFAULT_CONFIGURATION).get("Rules") or DEFAULT_CONFIGURATION["Rules"]
    return rules[0]


def _user_context(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(base64.b64decode(raw, validate=True).decode("utf-8"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid_argument(_CONTEXT_ERROR, "x-amz-server-side-encryption-context", raw) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid_argument(_CONTEXT_ERROR, "x-amz-server-side-encryption-context", raw)
    return value


def requested(params: dict[str, Any], bucket: Bucket) -> Requested:
    """What a PutObject / CopyObject / CreateMultipartUpload request asks for."""
    sse = params.get("ServerSideEncryption")
    key_id = params.get("SSEKMSKeyId")
    raw_context = params.get("SSEKMSEncryptionContext")
    if sse == SSE_DSSE:
        raise dsse_not_supported()
    if sse is not None and sse not in (SSE_S3, SSE_KMS):
        raise invalid_argument("The encryption method specified is not supported", "x-amz-server-side-encryption",
                               sse)
    if (key_id or raw_context) and sse != SSE_KMS:
        raise requires_kms_header()
    conditions = {HEADER_SSE: sse} if sse else {}
    if key_id:
        conditions[HEADER_KMS_KEY] = key_id
    rule = default_rule(bucket)
    by_default = rule.get("ApplyServerSideEncryptionByDefault") or {}
    rule_bucket_key = bool(rule.get("BucketKeyEnabled")) and by_default.get("SSEAlgorithm") == SSE_KMS
    if sse is None:
        algorithm = by_default.get("SSEAlgorithm") or SSE_S3
        if algorithm == SSE_DSSE:
            raise dsse_not_supported()
        if algorithm != SSE_KMS:
            return Requested(SSE_S3)
        return Requested(SSE_KMS, by_default.get("KMSMasterKeyID"), rule_bucket_key)
    if sse == SSE_S3:
        return Requested(SSE_S3, condition_keys=conditions)
    bucket_key = params["BucketKeyEnabled"] if params.get("BucketKeyEnabled") is not None else rule_bucket_key
    return Requested(SSE_KMS, key_id, bool(bucket_key), _user_context(raw_context), conditions)


def validate_configuration(config: dict[str, Any]) -> dict[str, Any]:
    """PutBucketEncryption's document, normalized; S3 takes exactly one rule."""
    rules = config.get("Rules") or []
    if len(rules) != 1:
        raise malformed_xml()
    rule = rules[0]
    by_default = rule.get("ApplyServerSideEncryptionByDefault")
    if not by_default or not by_default.get("SSEAlgorithm"):
        raise malformed_xml()
    algorithm = by_default["SSEAlgorithm"]
    if algorithm == SSE_DSSE:
        raise dsse_not_supported()
    if algorithm not in (SSE_S3, SSE_KMS):
        raise malformed_xml()
    if by_default.get("KMSMasterKeyID") and algorithm != SSE_KMS:
        raise invalid_argument("a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or "
                               "aws:kms:dsse", "ApplyServerSideEncryptionByDefault", algorithm)
    normalized: dict[str, Any] = {"SSEAlgorithm": algorithm}
    if by_default.get("KMSMasterKeyID"):
        normalized["KMSMasterKeyID"] = by_default["KMSMasterKeyID"]
    return {"Rules": [{"ApplyServerSideEncryptionByDefault": normalized,
                       "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled"))}]}


class ServerSideEncryption:
    """Data keys for writes and reads, as the requester."""

    def __init__(self, app: AppState) -> None:
        self.app = app

    @cached_property
    def kms(self) -> KeyService:
        from stratum.services.kms.service import key_service

        return key_service(self.app)

    @cached_property
    def _sse_s3(self) -> AESGCM:
        return AESGCM(self.kms.master.derive("s3/sse-s3/v1"))

    @staticmethod
    def via(bucket: Bucket) -> str:
        return f"s3.{bucket.region}.amazonaws.com"

    def new_key(self, ctx: RequestContext, bucket: Bucket, key: str, params: dict[str, Any]
                ) -> tuple[Encryption, bytes]:
        """(encryption record, plaintext data key) for a new object or multipart upload."""
        want = requested(params, bucket)
        if want.algorithm == SSE_S3:
            data_key = secrets.token_bytes(DATA_KEY_BYTES)
            nonce = secrets.token_bytes(12)
            wrapped = nonce + self._sse_s3.encrypt(nonce, data_key, _SSE_S3_AAD)
            return Encryption(SSE_S3, wrapped, condition_keys=want.condition_keys), data_key
        context = {**want.user_context,
                   KMS_CONTEXT_KEY: bucket_arn(bucket.name) if want.bucket_key else object_arn(bucket.name, key)}
        # Key ids, aliases and aws/s3 resolve in the requester's account (anonymous: the bucket owner's).
        account = bucket.account_id if ctx.identity.is_anonymous else ctx.account_id
        try:
            key_id = want.kms_key_id or self.kms.aws_managed_key(account, bucket.region, "s3").arn
            generated = self.kms.generate_data_key(ctx, key_id, DATA_KEY_BYTES, context,
                                                   via_service=self.via(bucket), region=bucket.region)
        except ServiceError as exc:
            raise kms_error(exc) from None
        return Encryption(SSE_KMS, generated.ciphertext, generated.key.arn, context, want.bucket_key,
                          want.condition_keys), generated.plaintext

    def data_key(self, ctx: RequestContext | None, bucket: Bucket, encryption: Encryption) -> bytes:
        """The plaintext data key of a stored object; SSE-KMS asks KMS to decrypt it as the caller
        (``ctx`` None: a server-internal read, decrypted without a caller to authorize)."""
        if encryption.algorithm == SSE_S3:
            wrapped = encryption.wrapped_key
            try:
                return self._sse_s3.decrypt(wrapped[:12], wrapped[12:], _SSE_S3_AAD)
            except InvalidTag:
                raise ServiceError("InternalError", "The object's data key cannot be unsealed with this server's "
                                   "master key.", 500, sender_fault=False) from None
        try:
            if ctx is None:
                return self.kms.decrypt_internal(encryption.wrapped_key, encryption.context, bucket.region).plaintext
            return self.kms.decrypt(ctx, encryption.wrapped_key, encryption.context, via_service=self.via(bucket),
                                    region=bucket.region).plaintext
        except ServiceError as exc:
            raise kms_error(exc) from None
