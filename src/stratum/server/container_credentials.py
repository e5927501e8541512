"""Role credentials for the long-running processes Stratum starts (model servers, jobs, notebook
instances), served
the way SageMaker's containers and notebook instances get theirs: a credentials endpoint the AWS SDKs' container
provider reads (``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with ``AWS_CONTAINER_AUTHORIZATION_TOKEN``)
and reads again before the session expires, so a process that runs for days keeps working.

The token names what the process runs for and the role it runs as, signed with a key derived from
the master key: any server of a cluster answers it, and it is only honoured while its subject is
alive (an endpoint instance not yet removed, a job still running), so a leaked token of a finished
job gives nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

from stratum.protocol.errors import ServiceError

PATH = "/_stratum/container-credentials"
SESSION_SECONDS = 3600
_REFRESH_MARGIN = timedelta(minutes=20)  # a cached session is renewed this long before it expires
# kind -> "module:function(db, subject) -> bool": whether the subject still runs (imported lazily,
# as the runtimes depend on the server, not the other way round).
LIVENESS = {
    "endpoint": "stratum.hosting.records:instance_alive",
    "job": "stratum.jobs.store:job_alive",
    "notebook": "stratum.notebooks.store:instance_alive",
}


def _key(master_key_path: Path) -> bytes:
    from stratum.services.kms.crypto import master_key

    return master_key(master_key_path).derive("container-credentials")


def _sign(key: bytes, claims: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, claims.encode(), hashlib.sha256).digest()).decode().rstrip("=")


def token(master_key_path: Path, kind: str, subject: str, role_arn: str, session_name: str) -> str:
    claims = base64.urlsafe_b64encode(json.dumps(
        {"k": kind, "s": subject, "r": role_arn, "n": session_name}, separators=(",", ":")).encode()).decode()
    return f"{claims}.{_sign(_key(master_key_path), claims)}"


def environment(endpoint_url: str, value: str) -> dict[str, str]:
    """What a process needs for the AWS SDKs to fetch (and refresh) its credentials here."""
    return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint_url.rstrip("/") + PATH,
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": value}


def usable(endpoint_url: str) -> bool:
    """Whether the AWS SDKs' container provider accepts the endpoint: HTTPS, or plain HTTP only to a
    loopback address (botocore refuses other hosts)."""
    import ipaddress
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint_url)
    if parts.scheme == "https":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _denied() -> ServiceError:
    return ServiceError("AccessDenied", "Invalid credentials token", 403)


class ContainerCredentials:
    """Checks tokens and issues their role's sessions, one cached per token until it nears expiry."""

    def __init__(self, db: Any, master_key_path: Path) -> None:
        self.db = db
        self.key = _key(master_key_path)
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def _claims(self, value: str) -> dict[str, str]:
        claims, _, signature = value.partition(".")
        if not signature or not hmac.compare_digest(signature, _sign(self.key, claims)):
            raise _denied()
        try:
            parsed = json.loads(base64.urlsafe_b64decode(claims.encode()))
        except ValueError:
            raise _denied() from None
        if not isinstance(parsed, dict) or parsed.get("k") not in LIVENESS:
            raise _denied()
        return parsed

    def credentials(self, value: str) -> dict[str, Any]:
        """The answer of the credentials endpoint for a token (AccessDenied when it is not valid)."""
        claims = self._claims(value)
        module, _, name = LIVENESS[claims["k"]].partition(":")
        alive: Callable[[Any, str], bool] = getattr(import_module(module), name)
        if not alive(self.db, claims["s"]):
            with self._lock:
                self._cache.pop(value, None)
            raise _denied()
        with self._lock:
            cached = self._cache.get(value)
        if cached is not None and cached["Expiration"] - datetime.now(UTC) > _REFRESH_MARGIN:
            return cached
        from stratum.services.sts.sessions import issue_service_role_session

        session = issue_service_role_session(self.db, claims["r"], claims["n"], duration_seconds=SESSION_SECONDS)
        answer = {**session, "RoleArn": claims["r"]}
        with self._lock:
            self._cache[value] = answer
        return answer


def response_body(creds: dict[str, Any]) -> dict[str, str]:
    """The container provider's document (what the ECS and SageMaker credential endpoints answer)."""
    return {"AccessKeyId": creds["AccessKeyId"], "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"], "RoleArn": creds["RoleArn"],
            "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}
