"""Signed tokens of presigned notebook URLs and of the browser sessions they open.

A token is ``<base64url JSON>.<base64url HMAC-SHA256>`` under a key derived from the master key, so
every server of a cluster (they share the master key) accepts the others' URLs, and any change to
the payload (instance, expiry, session length) is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from stratum.config import Settings

URL_LIFETIME = 300  # seconds: a presigned notebook URL must be opened within 5 minutes, as on SageMaker


def _key(settings: Settings) -> bytes:
    from stratum.services.kms import crypto

    return crypto.master_key(settings.master_key_path).derive("notebook-presigned-urls")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(settings: Settings, payload: dict[str, Any]) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def verify(settings: Settings, token: str) -> dict[str, Any] | None:
    """The payload of an untampered token, else None (expiry is the caller's to check)."""
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(_key(settings), body.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError):
        return None
    return payload if isinstance(payload, dict) else None
