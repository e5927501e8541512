"""S3's error vocabulary: codes, HTTP statuses, messages and extra <Error> fields as S3 sends them."""

from __future__ import annotations

from stratum.protocol.errors import ServiceError


def no_such_bucket(bucket: str) -> ServiceError:
    return ServiceError("NoSuchBucket", "The specified bucket does not exist", 404, fields={"BucketName": bucket})


def no_such_key(key: str) -> ServiceError:
    return ServiceError("NoSuchKey", "The specified key does not exist.", 404, fields={"Key": key})


def no_such_version(key: str, version_id: str) -> ServiceError:
    return ServiceError("NoSuchVersion", "The specified version does not exist.", 404,
                        fields={"Key": key, "VersionId": version_id})


def no_such_upload(upload_id: str) -> ServiceError:
    return ServiceError("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                        "or the upload may have been aborted or completed.", 404, fields={"UploadId": upload_id})


def invalid_bucket_name(bucket: str) -> ServiceError:
    return ServiceError("InvalidBucketName", "The specified bucket is not valid.", 400, fields={"BucketName": bucket})


def access_denied(message: str = "Access Denied") -> ServiceError:
    return ServiceError("AccessDenied", message, 403)


def invalid_argument(message: str, name: str | None = None, value: str | None = None) -> ServiceError:
    fields: dict[str, str] = {}
    if name is not None:
        fields["ArgumentName"] = name
        fields["ArgumentValue"] = "" if value is None else value
    return ServiceError("InvalidArgument", message, 400, fields=fields)


def invalid_request(message: str) -> ServiceError:
    return ServiceError("InvalidRequest", message, 400)


def malformed_xml() -> ServiceError:
    return ServiceError("MalformedXML", "The XML you provided was not well-formed or did not validate "
                        "against our published schema", 400)


def precondition_failed(condition: str) -> ServiceError:
    return ServiceError("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                        412, fields={"Condition": condition})


def bad_digest(algorithm: str) -> ServiceError:
    if algorithm.upper() == "MD5":
        return ServiceError("BadDigest", "The Content-MD5 you specified did not match what we received.", 400)
    return ServiceError("BadDigest", f"The {algorithm.upper()} you specified did not match the calculated "
                        "checksum.", 400)


def invalid_digest() -> ServiceError:
    return ServiceError("InvalidDigest", "The Content-MD5 you specified was invalid.", 400)


def delete_marker_not_allowed(method: str, version_id: str) -> ServiceError:
    """GET/HEAD of a specific version that is a delete marker."""
    return ServiceError("MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
                        fields={"Method": method, "ResourceType": "DeleteMarker"},
                        headers={"x-amz-delete-marker": "true", "x-amz-version-id": version_id,
                                 "Allow": "DELETE"})
