"""The S3 provider: the operation mixins plus request routing for virtual-hosted-style buckets."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stratum.protocol.http import HttpRequest
from stratum.server.context import RequestContext

from . import xml_roots
from .buckets import BucketOps
from .listops import ListOps
from .maintenance import sweep_in_background
from .multipart import MultipartOps

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

# Hostname suffixes under which the first label(s) name a bucket ("bucket.localhost:4747",
# "bucket.s3.localhost"). Longest first so "b.s3.localhost" is bucket "b", not "b.s3".
VIRTUAL_HOST_SUFFIXES = (".s3.localhost", ".localhost")


def virtual_host_bucket(host: str) -> str | None:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host  # drop the port (not for bare IPv6)
    name = name.lower().rstrip(".")
    for suffix in VIRTUAL_HOST_SUFFIXES:
        if name.endswith(suffix):
            bucket = name[: -len(suffix)]
            return bucket if bucket and bucket != "s3" else None
    return None


class S3Provider(BucketOps, ListOps, MultipartOps):
    """Every S3 operation Stratum serves; see the mixins for the operations themselves."""

    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        # Reclaim blobs orphaned by a crash between blob write and commit (see maintenance).
        sweep_in_background(app.db, self.store)

    def prepare_request(self, request: HttpRequest) -> None:
        # Path-style ("/bucket/key") is what clients use against an IP endpoint; for virtual-hosted
        # requests the bucket comes from the Host header. Only routing changes: SigV4 still signs
        # the path exactly as sent (raw_path).
        bucket = virtual_host_bucket(request.host)
        if bucket is not None:
            request.route_path = f"/{bucket}{request.raw_path}"

    def handler(self, operation: str) -> Callable[[RequestContext, dict[str, Any]], Any] | None:
        func = super().handler(operation)
        if func is None or operation not in xml_roots.ROOTS:
            return func

        @functools.wraps(func)  # keeps the @blocking marker
        def with_s3_root(ctx: RequestContext, params: dict[str, Any]) -> Any:
            output = func(ctx, params)
            return xml_roots.render(operation, output, ctx.request_id) if isinstance(output, dict) else output

        return with_s3_root
