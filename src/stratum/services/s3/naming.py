"""Bucket naming rules, resource ARNs and the canonical user ids S3 shows as owners."""

from __future__ import annotations

import hashlib
import re

MAX_KEY_BYTES = 1024

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_RE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
# Reserved by AWS for other bucket types and features (general purpose bucket naming rules).
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def valid_bucket_name(name: str) -> bool:
    if not _BUCKET_RE.fullmatch(name):
        return False
    if ".." in name or ".-" in name or "-." in name or _IP_RE.fullmatch(name):
        return False
    return not (name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES))


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def canonical_id(account_id: str) -> str:
    """A stable 64-hex-digit canonical user id per account (S3's Owner.ID format)."""
    return hashlib.sha256(f"stratum-canonical-user:{account_id}".encode()).hexdigest()


def owner(account_id: str) -> dict[str, str]:
    return {"ID": canonical_id(account_id)}
