"""ACK's AdoptedResource (group services.k8s.aws): bring an existing Stratum resource under the
operator's management by writing the custom resource that describes it. The new resource's spec is
the Describe output spelled as its CRD; it carries ACK's adoption annotations, so the reconciler finds
the existing resource (by name, or by ARN for executions and model packages) instead of creating one."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from stratum.operator import conditions as cond
from stratum.operator.carm import ANNOTATION_ACCOUNT, ANNOTATION_REGION, CarmError
from stratum.operator.casing import to_k8s
from stratum.operator.kube import KubeError
from stratum.operator.reconcile import (
    ANNOTATION_ADOPTION_FIELDS,
    ANNOTATION_ADOPTION_POLICY,
    Reconciler,
    error_message,
)
from stratum.operator.resources import GROUP, KINDS, VERSION, Kind

ACK_GROUP = "services.k8s.aws"
ANNOTATION_ADOPTED = "services.k8s.aws/adopted"
ADOPTED_RESOURCE = Kind(kind="AdoptedResource", plural="adoptedresources", create="", describe="",
                        describe_key="", arn_field="")


def _path(namespace: str, name: str) -> str:
    return f"/apis/{ACK_GROUP}/v1alpha1/namespaces/{namespace}/adoptedresources/{name}"


def reconcile_adopted(rec: Reconciler, obj: dict[str, Any]) -> float | None:
    meta = obj["metadata"]
    status = dict(obj.get("status") or {})
    adopted = next((c for c in status.get("conditions") or [] if c.get("type") == cond.ADOPTED), None)
    if adopted and adopted.get("status") == "True":
        return None  # done once; the adopted resource is reconciled on its own from now on

    def done(ok: bool, message: str) -> None:
        status["conditions"] = cond.merge(status.get("conditions"), [cond.condition(cond.ADOPTED, ok, message)])
        status["conditions"] = [c for c in status["conditions"] if c["type"] != cond.READY]
        rec.kube.patch(_path(meta["namespace"], meta["name"]) + "/status", {"status": status})

    spec = obj.get("spec") or {}
    aws, target = spec.get("aws") or {}, spec.get("kubernetes") or {}
    kind = KINDS.get(target.get("kind", "")) if target.get("group") == GROUP else None
    if kind is None:
        done(False, f"{target.get('kind')}.{target.get('group')} is not a kind this operator serves")
        return None
    ident = aws.get("arn") if kind.by_arn else (aws.get("nameOrID") or aws.get("arn", "").rsplit("/", 1)[-1])
    if not ident:
        done(False, "spec.aws.arn is required for " + kind.kind if kind.by_arn else "spec.aws.nameOrID is required")
        return None
    try:
        account, region = rec.accounts.target(obj)
        sm = rec.accounts.client(account, region)
        latest = rec._describe(kind, sm, ident)
    except CarmError as err:
        done(False, str(err))
        return 5.0
    except (ClientError, BotoCoreError) as err:
        done(False, error_message(err))
        return 2.0
    if latest is None:
        done(False, f"{kind.kind} {ident} does not exist")
        return None
    schema = ((rec.schemas.get(kind.kind) or {}).get("properties") or {}).get("spec") or {}
    new_spec = dict(to_k8s(latest, schema))
    if "pipelineName" in (schema.get("properties") or {}) and "pipelineName" not in new_spec and latest.get("PipelineArn"):
        new_spec["pipelineName"] = latest["PipelineArn"].rsplit("/", 1)[-1]  # ACK's customSetSpec
    target_meta = target.get("metadata") or {}
    annotations = {**(target_meta.get("annotations") or {}), ANNOTATION_ADOPTED: "true",
                   ANNOTATION_ADOPTION_POLICY: "adopt",
                   ANNOTATION_ADOPTION_FIELDS: json.dumps({"arn": ident} if kind.by_arn else {"name": ident})}
    for key in (ANNOTATION_ACCOUNT, ANNOTATION_REGION):
        if (meta.get("annotations") or {}).get(key):
            annotations[key] = meta["annotations"][key]
    namespace = target_meta.get("namespace") or meta["namespace"]
    name = target_meta.get("name") or ident.rsplit("/", 1)[-1].lower()
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind.kind,
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations,
                         "labels": target_meta.get("labels") or {}},
            "spec": new_spec}
    try:
        rec.kube.create(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{kind.plural}", body)
    except KubeError as err:
        if err.status != 409:  # already there: adopted by an earlier pass
            done(False, str(err))
            return None
    done(True, f"Adopted {kind.kind} {ident} as {namespace}/{name}")
    return None
