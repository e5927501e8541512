"""S3 object bytes for the rest of the server (SageMaker reading a pipeline definition, the engine
reading a property file).

Every blob is encrypted (see ``sse``), so nothing outside this package may read or write the blob
store directly: read through these functions (writers go through the S3 API, as jobs do). With a
request context, SSE-KMS data keys are decrypted as that caller (kms:Decrypt through S3, exactly as
GetObject would); the caller authorizes s3:GetObject itself first. Without one (background work that
decides access on its own, like the pipeline engine) the server unwraps the keys on its own
authority; a disabled or deleted KMS key still refuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from .catalog import Bucket, ObjectVersion

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext

    from .objects import ObjectOps


def _ops(app: AppState) -> ObjectOps:
    provider = app.providers.get("s3")
    if provider is None:
        raise RuntimeError("this server runs no S3 service")
    return cast("ObjectOps", provider)


def read_stream(app: AppState, bucket: Bucket, obj: ObjectVersion, *, ctx: RequestContext | None = None,
                first: int = 0, length: int | None = None) -> Iterator[bytes]:
    """The object's plaintext, ``length`` bytes from ``first`` (all when None). The blob is opened
    now: a FileNotFoundError here means the version was replaced or deleted meanwhile."""
    return _ops(app).object_bytes(ctx, bucket, obj, first, length)


def read_bytes(app: AppState, bucket: Bucket, obj: ObjectVersion, *, ctx: RequestContext | None = None) -> bytes:
    return b"".join(read_stream(app, bucket, obj, ctx=ctx))

