"""Bucket operations: create/head/list/delete, location, policy and versioning configuration."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpResponse
from stratum.server.context import RequestContext, blocking

from . import catalog, sse
from .base import S3Base
from .catalog import Bucket
from .errors import invalid_argument, invalid_bucket_name, malformed_xml, no_such_bucket
from .naming import owner, valid_bucket_name
from .tables import s3_buckets, s3_multipart_uploads

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
US_EAST_1 = "us-east-1"


def _already(code: str, bucket: str) -> ServiceError:
    messages = {
        "BucketAlreadyOwnedByYou": "Your previous request to create the named bucket succeeded and you already own it.",
        "BucketAlreadyExists": "The requested bucket name is not available. The bucket namespace is shared by all "
                               "users of the system. Please select a different name and try again.",
    }
    return ServiceError(code, messages[code], 409, fields={"BucketName": bucket})


def malformed_policy(message: str) -> ServiceError:
    return ServiceError("MalformedPolicy", message, 400)


class BucketOps(S3Base):
    # ----------------------------------------------------------------------------- lifecycle
    @blocking
    def create_bucket(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["Bucket"]
        if not valid_bucket_name(name):
            raise invalid_bucket_name(name)
        region = self._creation_region(ctx, params.get("CreateBucketConfiguration") or {})
        if params.get("ObjectLockEnabledForBucket"):
            # Refuse rather than create a bucket that silently lacks the retention it asked for.
            raise ServiceError("NotImplemented", "S3 Object Lock is not supported by this server.", 501)
        ctx.authorize("s3:CreateBucket", f"arn:aws:s3:::{name}", resource_account=ctx.account_id,
                      context=self.s3_context(ctx))
        try:
            with self.app.db.begin() as conn:
                existing = catalog.get_bucket(conn, name)
                if existing is not None:
                    raise _already("BucketAlreadyOwnedByYou" if existing.account_id == ctx.account_id
                                   else "BucketAlreadyExists", name)
                conn.execute(insert(s3_buckets).values(name=name, account_id=ctx.account_id, region=region,
                                                       created_at=catalog.now(), versioning=None, policy=None))
        except IntegrityError:  # lost a race with a concurrent CreateBucket of the same name
            existing = self.load_bucket(name)
            mine = existing is not None and existing.account_id == ctx.account_id
            raise _already("BucketAlreadyOwnedByYou" if mine else "BucketAlreadyExists", name) from None
        return {"Location": f"/{name}"}

    @staticmethod
    def _creation_region(ctx: RequestContext, config: dict[str, Any]) -> str:
        """S3's LocationConstraint rules: us-east-1 takes no constraint, every other region must name
        itself, and the constraint must match the region the request was signed for."""
        constraint = config.get("LocationConstraint")
        if constraint == US_EAST_1:
            raise ServiceError("InvalidLocationConstraint", "The specified location-constraint is not valid", 400,
                               fields={"LocationConstraint": constraint})
        region = constraint or US_EAST_1
        if region != ctx.region:
            shown = constraint or "unspecified"
            raise ServiceError("IllegalLocationConstraintException",
                               f"The {shown} location constraint is incompatible for the region specific "
                               "endpoint this request was sent to.", 400)
        return region

    @blocking
    def head_bucket(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:ListBucket", bucket)
        return {"BucketRegion": bucket.region, "AccessPointAlias": False}

    @blocking
    def list_buckets(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        # The service-level resource: matched by "*" and by the common "arn:aws:s3:::*" alike.
        ctx.authorize("s3:ListAllMyBuckets", "arn:aws:s3:::", context=self.s3_context(ctx))
        prefix = params.get("Prefix") or ""
        after = params.get("ContinuationToken")
        limit = params.get("MaxBuckets")
        if limit is not None and not 1 <= limit <= 10000:
            raise invalid_argument("Argument value is not within the allowed range of 1-10000", "max-buckets",
                                   str(limit))
        q = select(s3_buckets).where(s3_buckets.c.account_id == ctx.account_id)
        if prefix:
            q = q.where(s3_buckets.c.name.startswith(prefix, autoescape=True))
        if after:
            q = q.where(s3_buckets.c.name > after)
        if params.get("BucketRegion"):
            q = q.where(s3_buckets.c.region == params["BucketRegion"])
        q = q.order_by(s3_buckets.c.name)
        if limit is not None:
            q = q.limit(limit + 1)
        with self.app.db.read() as conn:
            rows = [Bucket(**r) for r in conn.execute(q).mappings()]
        out: dict[str, Any] = {"Owner": owner(ctx.account_id)}
        if limit is not None and len(rows) > limit:
            rows = rows[:limit]
            out["ContinuationToken"] = rows[-1].name
        out["Buckets"] = [{"Name": b.name, "CreationDate": b.created_at, "BucketRegion": b.region} for b in rows]
        if prefix:
            out["Prefix"] = prefix
        return out

    @blocking
    def delete_bucket(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:DeleteBucket", bucket)
        with self.app.db.begin() as conn:
            if catalog.lock_bucket(conn, bucket.name, exclusive=True) is None:
                raise no_such_bucket(bucket.name)
            if catalog.bucket_has_objects(conn, bucket.name):
                message = "The bucket you tried to delete is not empty"
                if bucket.versioning is not None:
                    message += ". You must delete all versions in the bucket."
                raise ServiceError("BucketNotEmpty", message, 409, fields={"BucketName": bucket.name})
            # In-progress multipart uploads do not keep a bucket alive: they are aborted with it.
            upload_ids = [r.upload_id for r in conn.execute(select(s3_multipart_uploads.c.upload_id).where(
                s3_multipart_uploads.c.bucket == bucket.name))]
            part_paths = catalog.delete_uploads(conn, upload_ids)
            conn.execute(delete(s3_buckets).where(s3_buckets.c.name == bucket.name))
        self.delete_blobs(part_paths)
        self.store.prune_dir(bucket.name)
        return {}

    @blocking
    def get_bucket_location(self, ctx: RequestContext, params: dict[str, Any]) -> HttpResponse:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:GetBucketLocation", bucket)
        # botocore reads the root element's text (the operation cannot be modeled), so the generic
        # serializer's wrapper element would be wrong here: answer the document directly.
        constraint = "" if bucket.region == US_EAST_1 else bucket.region
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<LocationConstraint xmlns="{XMLNS}">{constraint}</LocationConstraint>')
        return HttpResponse(200, {"Content-Type": "application/xml", "x-amz-request-id": ctx.request_id},
                            body.encode())

    # -------------------------------------------------------------------------------- policy
    def _owner_only(self, ctx: RequestContext, bucket: Bucket) -> None:
        # Bucket policy calls from another account are refused even when its policies allow them.
        if ctx.account_id != bucket.account_id:
            raise ServiceError("MethodNotAllowed", "The specified method is not allowed against this resource.",
                               405, fields={"Method": ctx.http.method, "ResourceType": "BUCKETPOLICY"})

    @blocking
    def put_bucket_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:PutBucketPolicy", bucket)
        self._owner_only(ctx, bucket)
        document = params["Policy"]
        validate_bucket_policy(bucket.name, document)
        self._update_bucket(bucket.name, policy=document)
        return {}

    @blocking
    def get_bucket_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:GetBucketPolicy", bucket)
        self._owner_only(ctx, bucket)
        if bucket.policy is None:
            raise ServiceError("NoSuchBucketPolicy", "The bucket policy does not exist", 404,
                               fields={"BucketName": bucket.name})
        return {"Policy": bucket.policy}

    @blocking
    def delete_bucket_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:DeleteBucketPolicy", bucket)
        self._owner_only(ctx, bucket)
        self._update_bucket(bucket.name, policy=None)
        return {}

    # ---------------------------------------------------------------------------- versioning
    @blocking
    def put_bucket_versioning(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:PutBucketVersioning", bucket)
        status = (params.get("VersioningConfiguration") or {}).get("Status")
        if status not in ("Enabled", "Suspended"):
            raise malformed_xml()
        if (params.get("VersioningConfiguration") or {}).get("MFADelete") == "Enabled":
            raise ServiceError("InvalidRequest", "MFA delete is not supported by this server.", 400)
        self._update_bucket(bucket.name, versioning=status)
        return {}

    @blocking
    def get_bucket_versioning(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:GetBucketVersioning", bucket)
        return {"Status": bucket.versioning} if bucket.versioning else {}

    # ---------------------------------------------------------------------------- encryption
    @blocking
    def put_bucket_encryption(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:PutEncryptionConfiguration", bucket)
        config = sse.validate_configuration(params.get("ServerSideEncryptionConfiguration") or {})
        self._update_bucket(bucket.name, encryption=config)
        return {}

    @blocking
    def get_bucket_encryption(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:GetEncryptionConfiguration", bucket)
        # Every bucket encrypts (SSE-S3 unless configured otherwise), so there is always an answer.
        return {"ServerSideEncryptionConfiguration": bucket.encryption or sse.DEFAULT_CONFIGURATION}

    @blocking
    def delete_bucket_encryption(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        bucket = self.bucket(ctx, params)
        self.authorize(ctx, "s3:PutEncryptionConfiguration", bucket)
        self._update_bucket(bucket.name, encryption=None)
        return {}

    def _update_bucket(self, name: str, **values: Any) -> None:
        with self.app.db.begin() as conn:
            result = conn.execute(update(s3_buckets).where(s3_buckets.c.name == name).values(**values))
            if result.rowcount == 0:
                raise no_such_bucket(name)


# ------------------------------------------------------------------------------------ policies
_JSON_MESSAGE = "Policies must be valid JSON and the first byte must be '{'"


MAX_POLICY_BYTES = 20 * 1024


def validate_bucket_policy(bucket: str, document: str) -> None:
    """Reject what S3 rejects: non-JSON, grammar errors, and resources outside this bucket."""
    if not document.lstrip().startswith("{"):
        raise malformed_policy(_JSON_MESSAGE)
    try:
        data = json.loads(document)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the reader's stack
        raise malformed_policy(_JSON_MESSAGE) from None
    if not isinstance(data, dict):
        raise malformed_policy(_JSON_MESSAGE)
    # S3's 20 KB quota counts the document without its insignificant whitespace.
    if len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()) > MAX_POLICY_BYTES:
        raise ServiceError("PolicyTooLarge", "Policy exceeds the maximum allowed document size.", 400)
    try:
        from stratum.policy import parse_policy
        from stratum.policy.errors import MalformedPolicyDocument
    except ImportError:  # policy engine not present in this build: JSON-level checks only
        parse_policy = None
    if parse_policy is not None:
        try:
            parse_policy(document, kind="resource")
        except MalformedPolicyDocument as exc:
            raise malformed_policy(str(exc) or _JSON_MESSAGE) from None
    statements = data.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    for stmt in statements if isinstance(statements, list) else []:
        if not isinstance(stmt, dict):
            continue
        for field in ("Resource", "NotResource"):
            value = stmt.get(field)
            for resource in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
                if not _resource_in_bucket(bucket, resource):
                    raise malformed_policy("Policy has invalid resource")


def _resource_in_bucket(bucket: str, resource: Any) -> bool:
    if not isinstance(resource, str):
        return False
    arn = f"arn:aws:s3:::{bucket}"
    cut = min((i for i in (resource.find("*"), resource.find("?")) if i >= 0), default=-1)
    if cut < 0:
        return resource == arn or resource.startswith(arn + "/")
    head = resource[:cut]  # a wildcard resource must still be able to name this bucket or its objects
    return (arn + "/").startswith(head) or head.startswith(arn + "/")
