"""Which account and region a resource lives in, and a SageMaker client for it.

As ACK: the resource's ``services.k8s.aws/owner-account-id`` / ``services.k8s.aws/region`` annotations,
else its namespace's (``owner-account-id``, ``default-region``), else the operator's own account and
default region. Another account is reached through Cross Account Resource Management (CARM): the
``ack-role-account-map`` ConfigMap in the operator's namespace maps account ID -> role ARN, and the
operator calls sts:AssumeRole into that role. Where the API server serves no ConfigMaps the same map is
read from a directory (the ConfigMap mounted as a volume: one file per key)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from stratum.operator.kube import Kube

CARM_CONFIGMAP = "ack-role-account-map"
ANNOTATION_ACCOUNT = "services.k8s.aws/owner-account-id"
ANNOTATION_REGION = "services.k8s.aws/region"
ANNOTATION_DEFAULT_REGION = "services.k8s.aws/default-region"
_TTL = 5.0  # seconds a ConfigMap or namespace read is reused: edits apply within this


class CarmError(Exception):
    """No role is mapped for the account a resource asks for (ACK: the resource cannot be reconciled)."""


class Accounts:
    def __init__(self, *, endpoint_url: str | None, region: str, kube: Kube | None, namespace: str,
                 carm_dir: Path | None, session: boto3.Session | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.kube = kube
        self.namespace = namespace
        self.carm_dir = carm_dir
        self.session = session or boto3.Session(region_name=region)
        self._config = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self._clients: dict[tuple[str, str], tuple[float, Any]] = {}
        sts = self.session.client("sts", endpoint_url=endpoint_url, region_name=region, config=self._config)
        self.own_account = str(sts.get_caller_identity()["Account"])

    def _cached(self, key: str, load: Any) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < _TTL:
                return hit[1]
        value = load()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def _namespace_annotations(self, namespace: str) -> dict[str, str]:
        def load() -> dict[str, str]:
            if self.kube is None:
                return {}
            try:
                ns = self.kube.get(f"/api/v1/namespaces/{namespace}")
            except Exception:  # an API server without namespaces: nothing to honour
                return {}
            return dict(((ns or {}).get("metadata") or {}).get("annotations") or {})
        return dict(self._cached(f"ns/{namespace}", load))

    def carm(self) -> dict[str, str]:
        def load() -> dict[str, str]:
            data: dict[str, str] = {}
            if self.carm_dir is not None and self.carm_dir.is_dir():
                for f in self.carm_dir.iterdir():
                    if f.is_file() and not f.name.startswith("."):
                        data[f.name] = f.read_text().strip()
            if self.kube is not None:
                try:
                    cm = self.kube.get(f"/api/v1/namespaces/{self.namespace}/configmaps/{CARM_CONFIGMAP}")
                except Exception:
                    cm = None
                data.update((cm or {}).get("data") or {})
            return data
        return dict(self._cached("carm", load))

    def target(self, obj: dict[str, Any]) -> tuple[str, str]:
        """(account ID, region) of a custom resource."""
        meta = obj.get("metadata") or {}
        ann = meta.get("annotations") or {}
        ns_ann = self._namespace_annotations(meta.get("namespace") or "default")
        account = ann.get(ANNOTATION_ACCOUNT) or ns_ann.get(ANNOTATION_ACCOUNT) or self.own_account
        region = ann.get(ANNOTATION_REGION) or ns_ann.get(ANNOTATION_DEFAULT_REGION) or self.region
        return account, region

    def client(self, account: str, region: str, service: str = "sagemaker") -> Any:
        key = (account, region + "/" + service)
        now = time.time()
        with self._lock:
            hit = self._clients.get(key)
            if hit and hit[0] > now:
                return hit[1]
        if account == self.own_account:
            session, expires = self.session, float("inf")
        else:
            role = self.carm().get(account)
            if not role:
                raise CarmError(f"no role is mapped for account {account} in the {CARM_CONFIGMAP} ConfigMap")
            sts = self.session.client("sts", endpoint_url=self.endpoint_url, region_name=region, config=self._config)
            creds = sts.assume_role(RoleArn=role, RoleSessionName="stratum-ack-operator")["Credentials"]
            session = boto3.Session(aws_access_key_id=creds["AccessKeyId"],
                                    aws_secret_access_key=creds["SecretAccessKey"],
                                    aws_session_token=creds["SessionToken"], region_name=region)
            expires = creds["Expiration"].timestamp() - 300  # renew five minutes before expiry
        client = session.client(service, endpoint_url=self.endpoint_url, region_name=region, config=self._config)
        with self._lock:
            self._clients[key] = (expires, client)
        return client
