"""Reading the JSON files Std:JsonGet names (property files, S3Uri) out of Stratum's own S3 store.

The engine reads on behalf of the pipeline's account: a bucket of another account is refused
(Stratum does not evaluate the execution role's policies for these reads).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stratum.engine.expressions import ExpressionError
from stratum.protocol.errors import ServiceError

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

MAX_JSON_BYTES = 10 * 1024 * 1024


def read_object(app: AppState, account_id: str, bucket_name: str, key: str) -> bytes:
    where = f"s3://{bucket_name}/{key}"
    try:
        from stratum.services.s3 import catalog
        from stratum.services.s3.access import read_bytes
    except ImportError:  # a build without the S3 service
        raise ExpressionError(f"Cannot read {where}: this Stratum build has no S3 service.") from None

    def failed(code: str, message: str) -> ExpressionError:
        return ExpressionError(f"Received an error while reading file {where} from S3: {code}: {message}")

    with app.db.read() as conn:
        bucket = catalog.get_bucket(conn, bucket_name)
        if bucket is None:
            raise failed("NoSuchBucket", "The specified bucket does not exist")
        if bucket.account_id != account_id:
            raise failed("AccessDenied", "Access Denied (the bucket belongs to another account)")
        obj = catalog.get_version(conn, bucket_name, key)
    if obj is None or obj.delete_marker or not obj.storage_path:
        raise failed("NoSuchKey", "The specified key does not exist.")
    if obj.size > MAX_JSON_BYTES:
        raise failed("EntityTooLarge", f"the file is {obj.size} bytes; JsonGet reads at most {MAX_JSON_BYTES}")
    try:
        return read_bytes(app, bucket, obj)
    except ServiceError as exc:  # e.g. the object's KMS key is disabled
        raise failed(exc.code, exc.message) from None
