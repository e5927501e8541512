"""S3's real XML root element names for responses whose output shape has an XML body.

botocore's models do not carry these names (its parser ignores the root element), so the generic
serializer names the root after the output shape ("ListObjectsV2Output"). Other SDKs and tools
match on S3's documented names ("ListBucketResult"), so S3 responses are renamed here.
"""

from __future__ import annotations

from typing import Any

from stratum.protocol.http import HttpResponse
from stratum.protocol.serializer import serialize_response
from stratum.protocol.service_models import service_model

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"

ROOTS = {
    "ListBuckets": "ListAllMyBucketsResult",
    "ListObjects": "ListBucketResult",
    "ListObjectsV2": "ListBucketResult",
    "ListObjectVersions": "ListVersionsResult",
    "ListMultipartUploads": "ListMultipartUploadsResult",
    "ListParts": "ListPartsResult",
    "CreateMultipartUpload": "InitiateMultipartUploadResult",
    "CompleteMultipartUpload": "CompleteMultipartUploadResult",
    "DeleteObjects": "DeleteResult",
    "GetBucketVersioning": "VersioningConfiguration",
    "CopyObject": "CopyObjectResult",
    "UploadPartCopy": "CopyPartResult",
}

EMPTY_DOCUMENTS = {"GetBucketVersioning"}


def render(operation: str, output: dict[str, Any], request_id: str) -> HttpResponse:
    """Serialize ``output`` generically, then give the XML document S3's root element name."""
    model = service_model("s3")
    op = model.operation_model(operation)
    response = serialize_response(model, op, output, request_id)
    body = response.body
    root = ROOTS.get(operation)
    if root is None or not isinstance(body, bytes):
        return response
    if not body:
        if operation in EMPTY_DOCUMENTS:  # e.g. a never-versioned bucket: <VersioningConfiguration/>
            response.body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{XMLNS}"/>'.encode()
            response.headers["Content-Type"] = "application/xml"
        return response
    head, sep, doc = body.partition(b"?>\n")
    if not sep or not doc.startswith(b"<"):
        return response
    end = next((i for i, c in enumerate(doc) if c in b" >/"), len(doc))
    old = doc[1:end].decode()
    closing = f"</{old}>".encode()
    if doc.endswith(closing):
        doc = doc[: -len(closing)] + f"</{root}>".encode()
    rest = doc[end:]
    if not rest.startswith(b" xmlns="):
        rest = f' xmlns="{XMLNS}"'.encode() + rest
    response.body = head + sep + f"<{root}".encode() + rest
    response.headers["Content-Length"] = str(len(response.body))
    return response
