"""The one generic reconciler, driven by the resources table: read the resource from Stratum, create it
when missing, update what changed (only the members the Update operation takes), delete or stop it
behind ACK's finalizer, and write ACK's status (ackResourceMetadata, conditions, the kind's own fields).
Each call returns when to look again: soon while the resource is changing, ACK's resync otherwise."""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from stratum.operator import conditions as cond
from stratum.operator.carm import Accounts, CarmError
from stratum.operator.casing import to_api, to_k8s
from stratum.operator.kube import Kube, KubeError
from stratum.operator.resources import GROUP, VERSION, Kind

log = logging.getLogger("stratum.operator")

ANNOTATION_DELETION_POLICY = "services.k8s.aws/deletion-policy"
ANNOTATION_ADOPTION_POLICY = "services.k8s.aws/adoption-policy"
ANNOTATION_ADOPTION_FIELDS = "services.k8s.aws/adoption-fields"

POLL_SECONDS = 1.0  # a resource in a modifying status (ACK requeues these too, more slowly)
RESYNC_SECONDS = 60.0  # ACK's default resync period
RETRY_SECONDS = 2.0  # after a recoverable error, e.g. Stratum restarting
CONFLICT_RETRY_SECONDS = 0.2  # by then the watch has brought the newer object
CARM_RETRY_SECONDS = 5.0  # an account without a role in the CARM map
_TOKEN_MEMBERS = ("ClientRequestToken", "ClientToken")


def resource_path(kind: Kind, namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{kind.plural}/{name}"


def _not_found(err: ClientError) -> bool:
    code = err.response.get("Error", {}).get("Code", "")
    message = err.response.get("Error", {}).get("Message", "").lower()
    return code in ("ResourceNotFound", "ResourceNotFoundException", "NoSuchEntity") or (
        # The 404s of ACK's generator.yaml: ValidationException with these message prefixes/suffixes.
        code == "ValidationException" and ("not found" in message or "could not find" in message
                                           or "does not exist" in message or "recordnotfound" in message))


def _matches(want: Any, have: Any, document: bool = False) -> bool:
    """Whether the observed value already is what the spec asks (fields the spec leaves out are the
    API's defaults, not a difference)."""
    if document:
        try:
            return bool(json.loads(want) == json.loads(have))
        except (TypeError, ValueError):
            return bool(want == have)
    if isinstance(want, dict):
        return isinstance(have, dict) and all(_matches(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(_matches, want, have))
    if isinstance(want, int | float) and isinstance(have, int | float):
        return float(want) == float(have)
    return bool(want == have)


class Reconciler:
    def __init__(self, kube: Kube, accounts: Accounts, schemas: dict[str, dict[str, Any]]) -> None:
        self.kube = kube
        self.accounts = accounts
        self.schemas = schemas  # kind -> the CRD's openAPIV3Schema
        self.model = accounts.session._session.get_service_model("sagemaker")

    # ------------------------------------------------------------------------------------ helpers
    def _input(self, operation: str) -> Any:
        return self.model.operation_model(operation).input_shape

    def _desired(self, kind: Kind, obj: dict[str, Any]) -> dict[str, Any]:
        return dict(to_api(obj.get("spec") or {}, self._input(kind.create)))

    def _identifier(self, kind: Kind, obj: dict[str, Any], arn: str | None) -> str | None:
        if kind.by_arn:
            return arn
        return self._desired(kind, obj).get(kind.name_field or "")

    def _describe(self, kind: Kind, sm: Any, ident: str | None) -> dict[str, Any] | None:
        if not ident:
            return None
        try:
            out = getattr(sm, _snake(kind.describe))(**{kind.describe_key: ident})
        except ClientError as err:
            if _not_found(err):
                return None
            raise
        out.pop("ResponseMetadata", None)
        return dict(out)

    def _call(self, sm: Any, operation: str, params: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        members = self._input(operation).members
        for m in _TOKEN_MEMBERS:
            if m in members and m not in params:
                params[m] = token or uuid.uuid4().hex
        out = getattr(sm, _snake(operation))(**params)
        out.pop("ResponseMetadata", None)
        return dict(out)

    def _set_finalizers(self, kind: Kind, obj: dict[str, Any], finalizers: list[str]) -> None:
        meta = obj["metadata"]
        self.kube.patch(resource_path(kind, meta["namespace"], meta["name"]),
                        {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}})

    def _write_status(self, kind: Kind, obj: dict[str, Any], status: dict[str, Any]) -> None:
        old = obj.get("status") or {}
        if status == old:
            return
        patch: dict[str, Any] = {k: None for k in old if k not in status}
        patch.update(status)
        meta = obj["metadata"]
        try:
            self.kube.patch(resource_path(kind, meta["namespace"], meta["name"]) + "/status", {"status": patch})
        except KubeError as err:
            if err.status != 404:  # deleted meanwhile: nothing to write
                raise

    def _status_fields(self, kind: Kind, latest: dict[str, Any]) -> dict[str, Any]:
        schema = ((self.schemas.get(kind.kind) or {}).get("properties") or {}).get("status") or {}
        props = schema.get("properties") or {}
        by_lower = {k.lower(): v for k, v in latest.items()}
        out: dict[str, Any] = {}
        for name, prop in props.items():
            if name in ("ackResourceMetadata", "conditions"):
                continue
            value = by_lower.get(name.lower())
            if value is not None:
                out[name] = to_k8s(value, prop)
        return out

    # ---------------------------------------------------------------------------------- reconcile
    def reconcile(self, kind: Kind, obj: dict[str, Any]) -> float | None:
        """Bring Stratum to the resource's spec and the resource's status to Stratum; the seconds after
        which to look again (None: only on the next change of the resource)."""
        if kind.kind == "AdoptedResource":
            from stratum.operator.adopt import reconcile_adopted

            return reconcile_adopted(self, obj)
        meta = obj["metadata"]
        status = dict(obj.get("status") or {})
        metadata = dict(status.get("ackResourceMetadata") or {})
        arn = metadata.get("arn")
        try:
            account, region = self.accounts.target(obj)
            sm = self.accounts.client(account, region)
        except CarmError as err:  # ACK: not synced, retried (the map may gain the account)
            status["conditions"] = cond.merge(status.get("conditions"), [
                cond.condition(cond.SYNCED, False, cond.UNAVAILABLE_ROLE_MESSAGE, str(err))])
            self._write_status(kind, obj, status)
            return CARM_RETRY_SECONDS
        except (ClientError, BotoCoreError) as err:  # AssumeRole refused or Stratum unreachable
            return self._failed(kind, obj, status, error_message(err), terminal=False)
        metadata.update({"ownerAccountID": account, "region": region})
        if meta.get("deletionTimestamp"):
            return self._delete(kind, obj, sm, arn)
        annotations = meta.get("annotations") or {}
        policy = annotations.get(ANNOTATION_ADOPTION_POLICY)
        managed = kind.finalizer in (meta.get("finalizers") or [])
        extra: list[dict[str, Any]] = [c for c in status.get("conditions") or [] if c.get("type") == cond.ADOPTED]
        try:
            ident = self._identifier(kind, obj, arn)
            if policy in ("adopt", "adopt-or-create") and not managed:
                fields = json.loads(annotations.get(ANNOTATION_ADOPTION_FIELDS) or "{}")
                ident = fields.get("arn") or fields.get("name") or ident
            latest = self._describe(kind, sm, ident)
            if latest is not None and not managed:
                if policy not in ("adopt", "adopt-or-create") and not kind.by_arn:
                    status["conditions"] = cond.merge(status.get("conditions"), [
                        cond.condition(cond.TERMINAL, True, cond.NOT_MANAGED_MESSAGE, cond.NOT_MANAGED_REASON),
                        cond.condition(cond.SYNCED, False, cond.NOT_SYNCED_MESSAGE)])
                    self._write_status(kind, obj, status)
                    return None
                extra = [cond.condition(cond.ADOPTED, True, "Resource adopted")]
            if latest is None and policy == "adopt":
                return self._failed(kind, obj, status, f"{kind.kind} {ident} does not exist to adopt", terminal=True)
            if not managed:
                self._set_finalizers(kind, obj, [*(meta.get("finalizers") or []), kind.finalizer])
            if latest is None:
                out = self._call(sm, kind.create, self._desired(kind, obj), token=meta.get("uid"))
                arn = out.get(kind.arn_field) or arn
                if arn:  # recorded at once: a crash before the next write must not create it twice
                    metadata["arn"] = arn
                    status["ackResourceMetadata"] = metadata
                    self._write_status(kind, obj, status)
                    obj = {**obj, "status": status}
                latest = self._describe(kind, sm, arn if kind.by_arn else ident)
            elif self._update(kind, sm, obj, latest, arn or latest.get(kind.arn_field)):
                latest = self._describe(kind, sm, ident)
        except KubeError as err:
            if err.status == 404:  # deleted meanwhile
                return None
            if err.status == 409:  # changed meanwhile (a finalizer write lost the race): again, soon
                return CONFLICT_RETRY_SECONDS
            raise
        except (ClientError, BotoCoreError) as err:
            status["ackResourceMetadata"] = metadata
            return self._failed(kind, obj, status, error_message(err), terminal=_terminal(kind, err), extra=extra)
        if latest is None:  # gone right after being created or updated: look again
            return RETRY_SECONDS
        metadata["arn"] = latest.get(kind.arn_field) or arn
        new_status = {k: v for k, v in status.items() if k in ("ackResourceMetadata", "conditions")}
        new_status["ackResourceMetadata"] = {k: v for k, v in metadata.items() if v}
        new_status.update(self._status_fields(kind, latest))
        phase = latest.get(kind.status_field) if kind.status_field else None
        conditions = list(extra)
        if phase is None:
            conditions.append(cond.condition(cond.SYNCED, True, cond.SYNCED_MESSAGE))
        else:
            conditions.append(cond.condition(cond.SYNCED, phase not in kind.modifying,
                                             f"{kind.kind} is in {phase} status."))
            if phase in kind.failed:
                conditions.append(cond.condition(
                    cond.TERMINAL, True, f"{kind.kind} status reached terminal state: {phase}. Check the FailureReason."))
        new_status["conditions"] = cond.merge(status.get("conditions"), conditions)
        self._write_status(kind, obj, new_status)
        return POLL_SECONDS if phase in kind.modifying else RESYNC_SECONDS

    def _update(self, kind: Kind, sm: Any, obj: dict[str, Any], latest: dict[str, Any], arn: str | None) -> bool:
        """Call the kind's Update operation when a member it takes differs from what Stratum has."""
        if kind.update is None:
            return False
        if kind.update_when is not None and latest.get(kind.status_field or "") not in kind.update_when:
            return False
        shape = self._input(kind.update)
        desired = self._desired(kind, obj)
        identifiers = {kind.describe_key, kind.arn_field, kind.name_field, *_TOKEN_MEMBERS}
        params: dict[str, Any] = {}
        changed = False
        for member in shape.members:
            if member in identifiers or member not in desired:
                continue
            if kind.update_only is not None and member not in kind.update_only:
                continue
            params[member] = to_api(desired[member], shape.members[member])
            if not _matches(desired[member], latest.get(member), document=member in kind.documents):
                changed = True
        if not changed:
            return False
        for member in shape.required_members:
            if member.endswith("Arn") and member not in params:
                params[member] = arn
            elif member in desired and member not in params:
                params[member] = desired[member]
        params.update(dict(kind.update_overrides))
        self._call(sm, kind.update, params)
        log.info("updated %s %s", kind.kind, obj["metadata"]["name"])
        return True

    def _delete(self, kind: Kind, obj: dict[str, Any], sm: Any, arn: str | None) -> float | None:
        meta = obj["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if kind.finalizer not in finalizers:
            return None
        rest = [f for f in finalizers if f != kind.finalizer]
        if (meta.get("annotations") or {}).get(ANNOTATION_DELETION_POLICY, "").lower() == "retain":
            self._set_finalizers(kind, obj, rest)
            return None
        status = dict(obj.get("status") or {})
        try:
            ident = self._identifier(kind, obj, arn)
            latest = self._describe(kind, sm, ident)
            phase = latest.get(kind.status_field or "") if latest else None
            if latest is None or (kind.delete_when is not None and phase not in kind.delete_when
                                  and phase not in kind.deleting):
                # Gone, or (for a Stop) already finished: nothing left to do in Stratum.
                self._set_finalizers(kind, obj, rest)
                return None
            if phase in kind.deleting:
                return POLL_SECONDS
            if kind.stop_before_delete and phase not in kind.stopped:
                if phase == "InService":
                    self._call(sm, kind.stop_before_delete, {kind.describe_key: ident})
                return POLL_SECONDS
            self._call(sm, kind.delete or "", {kind.describe_key: ident})
            log.info("%s %s: %s", kind.kind, meta["name"], kind.delete)
            return POLL_SECONDS / 2
        except KubeError as err:
            if err.status in (404, 409):
                return None if err.status == 404 else CONFLICT_RETRY_SECONDS
            raise
        except (ClientError, BotoCoreError) as err:
            return self._failed(kind, obj, status, error_message(err), terminal=False)

    def _failed(self, kind: Kind, obj: dict[str, Any], status: dict[str, Any], message: str, *, terminal: bool,
                extra: list[dict[str, Any]] | None = None) -> float | None:
        log.warning("%s %s/%s: %s", kind.kind, obj["metadata"].get("namespace"), obj["metadata"]["name"], message)
        if terminal:
            new = [cond.condition(cond.TERMINAL, True, message),
                   cond.condition(cond.SYNCED, False, cond.NOT_SYNCED_MESSAGE, message)]
        else:
            new = [cond.condition(cond.RECOVERABLE, True, message),
                   cond.condition(cond.SYNCED, None, cond.UNKNOWN_SYNCED_MESSAGE, message)]
        status["conditions"] = cond.merge(status.get("conditions"), [*(extra or []), *new])
        try:
            self._write_status(kind, obj, status)
        except KubeError as err:
            log.warning("%s %s: status not written: %s", kind.kind, obj["metadata"]["name"], err)
        return None if terminal else RETRY_SECONDS


def _snake(operation: str) -> str:
    from botocore import xform_name

    return str(xform_name(operation))


def error_message(err: Exception) -> str:
    if isinstance(err, ClientError):
        e = err.response.get("Error", {})
        return f"{e.get('Code', 'Error')}: {e.get('Message', '')}"
    return str(err)


def _terminal(kind: Kind, err: Exception) -> bool:
    """Whether only a change of the spec can fix the error. A resource the request names that does not
    exist (yet) is not: resources applied together (a ModelPackage and its group, an Endpoint and its
    config) may be reconciled in any order, and the next attempt succeeds."""
    if isinstance(err, ParamValidationError):  # the spec misses a member the API requires
        return True
    if not isinstance(err, ClientError) or _not_found(err):
        return False
    return err.response.get("Error", {}).get("Code") in kind.terminal_codes
