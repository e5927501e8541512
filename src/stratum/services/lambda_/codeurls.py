"""GetFunction's Code.Location: a URL of this server that returns the function's zip for ten
minutes, signed with a key derived from the master key (so any server of a cluster answers it)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path

PREFIX = "/_stratum/lambda/code/"
TTL_SECONDS = 600
_PATH = re.compile(re.escape(PREFIX) + r"([0-9a-f]{64})\.zip")


def _key(master_key_path: Path) -> bytes:
    from stratum.services.kms.crypto import master_key

    return master_key(master_key_path).derive("lambda-code-urls")


def _signature(key: bytes, sha: str, expires: int) -> str:
    return hmac.new(key, f"{sha}:{expires}".encode(), hashlib.sha256).hexdigest()


def code_url(endpoint: str, master_key_path: Path, sha: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + TTL_SECONDS)
    return f"{endpoint}{PREFIX}{sha}.zip?Expires={expires}&Signature={_signature(_key(master_key_path), sha, expires)}"


def check(path: str, query: dict[str, list[str]], master_key_path: Path) -> str | None:
    """The archive's SHA-256 when the URL is one code_url made and has not expired."""
    m = _PATH.fullmatch(path)
    if m is None:
        return None
    try:
        expires = int(query.get("Expires", ["0"])[0])
    except ValueError:
        return None
    signature = query.get("Signature", [""])[0]
    if expires < time.time() or not hmac.compare_digest(signature, _signature(_key(master_key_path), m.group(1),
                                                                                expires)):
        return None
    return m.group(1)
