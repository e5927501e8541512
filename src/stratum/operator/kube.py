"""A small synchronous Kubernetes API client for what the reconciler writes (status, finalizers,
adopted resources) and reads besides its watches (CRD schemas, the CARM ConfigMap, namespaces). It
uses the credentials kopf logged in with, so both talk to the API server the same way."""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from typing import Any

import httpx


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


def _file(data: str | bytes | None, path: Any, temporary: list[str]) -> str | None:
    """A path to the certificate or key: the kubeconfig's own, or a private temporary copy of inline
    data (ssl loads certificates from files only)."""
    if path:
        return str(path)
    if not data:
        return None
    f = tempfile.NamedTemporaryFile(delete=False, prefix="stratum-kube-")
    f.write(data if isinstance(data, bytes) else data.encode())
    f.close()
    temporary.append(f.name)
    return f.name


class Kube:
    def __init__(self, info: Any) -> None:
        """``info``: a kopf.ConnectionInfo."""
        self._temporary: list[str] = []
        headers = {"Accept": "application/json"}
        if info.token:
            headers["Authorization"] = f"Bearer {info.token}"
        if info.insecure:
            verify: Any = False
        else:
            ca = _file(info.ca_data, info.ca_path, self._temporary)
            verify = ssl.create_default_context(cafile=ca) if ca else True
        cert = _file(info.certificate_data, info.certificate_path, self._temporary)
        key = _file(info.private_key_data, info.private_key_path, self._temporary)
        if cert and isinstance(verify, ssl.SSLContext):
            verify.load_cert_chain(cert, key)
        elif cert:
            ctx = ssl.create_default_context()
            if info.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            ctx.load_cert_chain(cert, key)
            verify = ctx
        auth = (info.username, info.password) if info.username and info.password else None
        self.server = info.server.rstrip("/")
        self.default_namespace = info.default_namespace or "default"
        self._http = httpx.Client(base_url=self.server, headers=headers, verify=verify, auth=auth, timeout=30)

    def close(self) -> None:
        self._http.close()
        for name in self._temporary:
            os.unlink(name)
        self._temporary.clear()

    def _check(self, r: httpx.Response) -> dict[str, Any]:
        if r.status_code >= 400:
            try:
                message = r.json().get("message", r.text)
            except ValueError:
                message = r.text
            raise KubeError(r.status_code, message)
        return dict(r.json())

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when it does not exist (or the server serves no such API)."""
        r = self._http.get(path)
        if r.status_code == 404:
            return None
        return self._check(r)

    def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self._http.patch(path, content=json.dumps(body),
                             headers={"Content-Type": "application/merge-patch+json"})
        return self._check(r)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self._http.post(path, content=json.dumps(body), headers={"Content-Type": "application/json"})
        return self._check(r)
