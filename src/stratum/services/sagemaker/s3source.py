"""PipelineDefinitionS3Location: read a pipeline definition out of Stratum's own S3 store.

SageMaker reads the object with the caller's permissions, so the caller must be allowed
s3:GetObject (s3:GetObjectVersion for a VersionId) on it, the bucket policy included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from stratum.services.sagemaker.errors import validation

if TYPE_CHECKING:
    from stratum.server.context import RequestContext

# DescribePipeline returns the stored definition in a 1 MiB shape, so that is the limit here too.
MAX_DEFINITION_BYTES = 1024 * 1024


def read_definition(ctx: RequestContext, conn: Connection, location: dict[str, Any]) -> str:
    bucket_name, key, version = location["Bucket"], location["ObjectKey"], location.get("VersionId")
    where = f"s3://{bucket_name}/{key}" + (f" (version {version})" if version else "")
    try:
        from stratum.services.s3 import catalog
        from stratum.services.s3.access import read_bytes
        from stratum.services.s3.naming import object_arn
    except ImportError:  # a build without the S3 service
        raise validation("PipelineDefinitionS3Location is not supported by this Stratum build (no S3 service); "
                         "pass PipelineDefinition inline.") from None
    bucket = catalog.get_bucket(conn, bucket_name)
    if bucket is None:
        raise validation(f"Could not read the pipeline definition from {where}: the bucket does not exist.")
    ctx.authorize("s3:GetObjectVersion" if version else "s3:GetObject", object_arn(bucket_name, key),
                  resource_account=bucket.account_id, resource_policy=bucket.policy,
                  context={"s3:VersionId": version} if version else None)
    obj = catalog.get_version(conn, bucket_name, key, version) if (
        version is None or catalog.valid_version_id(version)) else None
    if obj is None or obj.delete_marker or not obj.storage_path:
        raise validation(f"Could not read the pipeline definition from {where}: the object does not exist.")
    if obj.size > MAX_DEFINITION_BYTES:
        raise validation(f"The pipeline definition at {where} is {obj.size} bytes; the maximum is "
                         f"{MAX_DEFINITION_BYTES} bytes.")
    data = read_bytes(ctx.app, bucket, obj, ctx=ctx)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise validation(f"The pipeline definition at {where} is not UTF-8 text.") from None
