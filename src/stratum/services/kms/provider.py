"""The KMS API: symmetric keys with real AES-256-GCM, key policies, aliases, rotation and deletion.

Key management operations work on keys of the caller's own account; Encrypt, Decrypt,
GenerateDataKey*, ReEncrypt, DescribeKey and GetKeyRotationStatus also accept another account's key
by ARN (cross-account use needs both that key's policy and the caller's IAM policies to allow it).
Every key operation is authorized against the key policy (``resource_policy_required``).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from stratum.server.context import Provider, RequestContext

from . import errors, policies
from . import keys as store
from .keys import DISABLED, ENABLED, PENDING_DELETION, SYMMETRIC_DEFAULT, Key
from .service import DATA_KEY_BYTES, check_usable, key_service
from .tables import kms_aliases, kms_keys

if TYPE_CHECKING:
    from stratum.server.app_state import AppState

ALIAS_PREFIX = "alias/"
RESERVED_ALIAS_PREFIX = "alias/aws/"
MAX_TAGS = 50
MAX_ON_DEMAND_ROTATIONS = 10
ROTATION_DAYS = (90, 2560)
PENDING_WINDOW_DAYS = (7, 30)
DEFAULT_PENDING_WINDOW = 30
ENCRYPTION_ALGORITHMS = [SYMMETRIC_DEFAULT]
ALIAS_DOC = "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"


def key_metadata(key: Key, material_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AWSAccountId": key.account_id, "KeyId": key.key_id, "Arn": key.arn, "CreationDate": key.created_at,
        "Enabled": key.state == ENABLED, "Description": key.description, "KeyUsage": key.key_usage,
        "KeyState": key.state, "Origin": key.origin, "KeyManager": key.key_manager,
        "CustomerMasterKeySpec": key.key_spec, "KeySpec": key.key_spec,
        "EncryptionAlgorithms": ENCRYPTION_ALGORITHMS, "MultiRegion": False,
    }
    if key.state == PENDING_DELETION:
        out["DeletionDate"] = key.deletion_date
        out["PendingDeletionWindowInDays"] = key.pending_window_days
    if material_id:
        out["CurrentKeyMaterialId"] = material_id
    return out


def _not_deleted() -> Any:
    """Keys past their deletion date are gone, whether or not their rows are purged yet."""
    return (kms_keys.c.state != PENDING_DELETION) | (kms_keys.c.deletion_date > store.now())


def _page(items: list[Any], limit: int | None, default: int) -> tuple[list[Any], bool]:
    size = limit or default
    return items[:size], len(items) > size


def _check_algorithm(value: str | None) -> None:
    if value is not None and value != SYMMETRIC_DEFAULT:
        raise errors.invalid_key_usage(f"The encryption algorithm {value} is not supported by a symmetric "
                                       "encryption KMS key.")


def _check_tags(tags: list[dict[str, str]]) -> None:
    keys = [t["TagKey"] for t in tags]
    if len(set(keys)) != len(keys):
        raise errors.tag_error("Duplicate tag keys")
    if any(k.startswith("aws:") for k in keys):
        raise errors.tag_error("Tags beginning with aws: are reserved for AWS use")
    if len(keys) > MAX_TAGS:
        raise errors.tag_error(f"A KMS key can have at most {MAX_TAGS} tags")


def _data_key_size(params: dict[str, Any]) -> int:
    spec, count = params.get("KeySpec"), params.get("NumberOfBytes")
    if (spec is None) == (count is None):
        raise errors.validation("Please specify either number of bytes or key spec.")
    return DATA_KEY_BYTES[spec] if spec is not None else int(count)


class KmsProvider(Provider):
    service = "kms"

    def __init__(self, app: AppState) -> None:
        super().__init__(app)
        # Loads (or on first start creates) the master key now, so a bad key stops the server at start.
        self.keys = key_service(app)

    # ------------------------------------------------------------------------------------- lookups
    def _managed_key(self, ctx: RequestContext, conn: Connection, key_id: str, action: str, *,
                     cross_account: bool = False, lock: bool = False) -> Key:
        """A key named by key id or key ARN, authorized for ``action``."""
        ref = self.keys.ref(ctx, key_id, aliases=False)
        if ref.account_id != ctx.account_id and not cross_account:
            # Key management never reaches into another account, whatever the policies say.
            raise errors.key_not_found(ref.arn)
        key = store.find_key(conn, ref, lock=lock)
        self.keys.authorize(ctx, conn, action, key, ref=ref)
        return key

    def _update(self, conn: Connection, key: Key, **values: Any) -> None:
        conn.execute(update(kms_keys).where(kms_keys.c.key_id == key.key_id).values(**values))

    # ----------------------------------------------------------------------------------- key lifecycle
    def create_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        spec = params.get("KeySpec") or params.get("CustomerMasterKeySpec") or SYMMETRIC_DEFAULT
        if params.get("KeySpec") and params.get("CustomerMasterKeySpec") and \
                params["KeySpec"] != params["CustomerMasterKeySpec"]:
            raise errors.validation("KeySpec and CustomerMasterKeySpec must not differ.")
        usage = params.get("KeyUsage") or "ENCRYPT_DECRYPT"
        origin = params.get("Origin") or "AWS_KMS"
        tags = params.get("Tags") or []
        bypass = bool(params.get("BypassPolicyLockoutSafetyCheck"))
        context: dict[str, Any] = {
            "kms:KeySpec": spec, "kms:KeyUsage": usage, "kms:KeyOrigin": origin,
            "kms:MultiRegion": bool(params.get("MultiRegion")), "kms:BypassPolicyLockoutSafetyCheck": bypass,
            "kms:CallerAccount": ctx.account_id,
        }
        if tags:
            context["aws:TagKeys"] = [t["TagKey"] for t in tags]
            context.update({f"aws:RequestTag/{t['TagKey']}": t["TagValue"] for t in tags})
        ctx.authorize("kms:CreateKey", "*", context=context)
        if spec != SYMMETRIC_DEFAULT:
            raise errors.unsupported(f"KeySpec {spec} is not supported by this server; only SYMMETRIC_DEFAULT "
                                     "keys are.")
        if usage != "ENCRYPT_DECRYPT":
            raise errors.validation(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
        if origin != "AWS_KMS" or params.get("CustomKeyStoreId") or params.get("XksKeyId"):
            raise errors.unsupported("Only keys with key material generated by KMS (Origin AWS_KMS) are supported "
                                     "by this server.")
        if params.get("MultiRegion"):
            raise errors.unsupported("Multi-Region keys are not supported by this server.")
        _check_tags(tags)
        policy = params.get("Policy") or policies.default_key_policy(ctx.account_id)
        with self.app.db.begin() as conn:
            policies.validate_key_policy(conn, policy)
            new = store.NewKey(ctx.account_id, ctx.region, policy, params.get("Description") or "", tags=tags)
            key = store.create_key(conn, self.keys.master, new)
            if not bypass:
                self._lockout_check(ctx, key.arn, policy)
            material_id = store.material_id(conn, key.key_id, 1)
        return {"KeyMetadata": key_metadata(key, material_id)}

    def _lockout_check(self, ctx: RequestContext, arn: str, policy: str) -> None:
        """KMS refuses a policy that would stop the caller from ever changing it again."""
        _request, decision = self.app.authorizer.check(
            ctx, "kms:PutKeyPolicy", arn, resource_account=ctx.account_id, resource_policy=policy,
            context={"kms:CallerAccount": ctx.account_id}, resource_policy_required=True)
        if not decision.allowed:
            raise errors.malformed_policy("The new key policy will not allow you to update the key policy in "
                                          "the future.")

    def describe_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ref = self.keys.ref(ctx, params["KeyId"])
        with self.app.db.read() as conn:
            key = store.find_key(conn, ref)
            self.keys.authorize(ctx, conn, "kms:DescribeKey", key, ref=ref)
            material_id = store.material_id(conn, key.key_id, key.current_version)
        return {"KeyMetadata": key_metadata(key, material_id)}

    def list_keys(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("kms:ListKeys", "*", context={"kms:CallerAccount": ctx.account_id})
        limit = params.get("Limit") or 100
        q = select(kms_keys.c.key_id, kms_keys.c.arn).where(
            (kms_keys.c.account_id == ctx.account_id) & (kms_keys.c.region == ctx.region) & _not_deleted())
        if params.get("Marker"):
            q = q.where(kms_keys.c.key_id > params["Marker"])
        with self.app.db.read() as conn:
            rows = list(conn.execute(q.order_by(kms_keys.c.key_id).limit(limit + 1)))
        shown, truncated = rows[:limit], len(rows) > limit
        out: dict[str, Any] = {"Keys": [{"KeyId": r.key_id, "KeyArn": r.arn} for r in shown], "Truncated": truncated}
        if truncated:
            out["NextMarker"] = shown[-1].key_id
        return out

    def update_key_description(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:UpdateKeyDescription", lock=True)
            if key.state == PENDING_DELETION:
                raise errors.pending_deletion(key.arn)
            self._update(conn, key, description=params["Description"])
        return {}

    def enable_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_enabled(ctx, params, "kms:EnableKey", ENABLED)

    def disable_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        return self._set_enabled(ctx, params, "kms:DisableKey", DISABLED)

    def _set_enabled(self, ctx: RequestContext, params: dict[str, Any], action: str, state: str) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], action, lock=True)
            if key.state == PENDING_DELETION:
                raise errors.pending_deletion(key.arn)
            self._update(conn, key, state=state)
        return {}

    def schedule_key_deletion(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        days = params.get("PendingWindowInDays") or DEFAULT_PENDING_WINDOW
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:ScheduleKeyDeletion", lock=True)
            if not PENDING_WINDOW_DAYS[0] <= days <= PENDING_WINDOW_DAYS[1]:
                raise errors.validation(f"PendingWindowInDays value {days} is out of range. It must be between "
                                        f"{PENDING_WINDOW_DAYS[0]} and {PENDING_WINDOW_DAYS[1]} (inclusive).")
            if key.state == PENDING_DELETION:
                raise errors.pending_deletion(key.arn)
            deletion = store.now() + timedelta(days=days)
            self._update(conn, key, state=PENDING_DELETION, deletion_date=deletion, pending_window_days=days)
        return {"KeyId": key.arn, "DeletionDate": deletion, "KeyState": PENDING_DELETION,
                "PendingWindowInDays": days}

    def cancel_key_deletion(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:CancelKeyDeletion", lock=True)
            if key.state != PENDING_DELETION:
                raise errors.invalid_state(f"{key.arn} is not pending deletion.")
            # A key whose deletion is cancelled comes back disabled, as in AWS.
            self._update(conn, key, state=DISABLED, deletion_date=None, pending_window_days=None)
        return {"KeyId": key.arn}

    # ------------------------------------------------------------------------------------- policies
    def put_key_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("PolicyName") or policies.DEFAULT_POLICY_NAME
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:PutKeyPolicy", lock=True)
            if name != policies.DEFAULT_POLICY_NAME:
                raise errors.not_found("No such policy exists")
            policies.validate_key_policy(conn, params["Policy"])
            if not params.get("BypassPolicyLockoutSafetyCheck"):
                self._lockout_check(ctx, key.arn, params["Policy"])
            self._update(conn, key, policy=params["Policy"])
        return {}

    def get_key_policy(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("PolicyName") or policies.DEFAULT_POLICY_NAME
        with self.app.db.read() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:GetKeyPolicy")
        if name != policies.DEFAULT_POLICY_NAME:
            raise errors.not_found("No such policy exists")
        return {"Policy": key.policy, "PolicyName": name}

    def list_key_policies(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.read() as conn:
            self._managed_key(ctx, conn, params["KeyId"], "kms:ListKeyPolicies")
        return {"PolicyNames": [policies.DEFAULT_POLICY_NAME], "Truncated": False}

    # -------------------------------------------------------------------------------------- aliases
    def _alias_name(self, name: str) -> str:
        if not name.startswith(ALIAS_PREFIX) or len(name) == len(ALIAS_PREFIX):
            raise errors.validation(f'Alias must start with the prefix "{ALIAS_PREFIX}". Please see {ALIAS_DOC}')
        if name.startswith(RESERVED_ALIAS_PREFIX):
            raise errors.not_authorized(f"The alias prefix {RESERVED_ALIAS_PREFIX} is reserved for AWS managed "
                                        "keys.")
        if ":" in name:
            raise errors.validation(f"{name} contains invalid characters for an alias")
        return name

    def _alias_target(self, ctx: RequestContext, conn: Connection, target: str, action: str) -> Key:
        if target.startswith(ALIAS_PREFIX) or ":alias/" in target:
            raise errors.validation("Aliases must refer to keys. Not aliases")
        key = self._managed_key(ctx, conn, target, action)
        if key.state == PENDING_DELETION:
            raise errors.pending_deletion(key.arn)
        return key

    def create_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = self._alias_name(params["AliasName"])
        arn = store.alias_arn(ctx.region, ctx.account_id, name)
        ctx.authorize("kms:CreateAlias", arn, context={"kms:CallerAccount": ctx.account_id})
        at = store.now()
        try:
            with self.app.db.begin() as conn:
                key = self._alias_target(ctx, conn, params["TargetKeyId"], "kms:CreateAlias")
                if store.alias_target(conn, ctx.account_id, ctx.region, name) is not None:
                    raise errors.already_exists(f"An alias with the name {arn} already exists")
                conn.execute(insert(kms_aliases).values(account_id=ctx.account_id, region=ctx.region,
                                                        alias_name=name, target_key_id=key.key_id,
                                                        created_at=at, updated_at=at))
        except IntegrityError:  # a concurrent CreateAlias of the same name won
            raise errors.already_exists(f"An alias with the name {arn} already exists") from None
        return {}

    def update_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = self._alias_name(params["AliasName"])
        arn = store.alias_arn(ctx.region, ctx.account_id, name)
        ctx.authorize("kms:UpdateAlias", arn, context={"kms:CallerAccount": ctx.account_id})
        with self.app.db.begin() as conn:
            current = store.alias_target(conn, ctx.account_id, ctx.region, name)
            if current is None:
                raise errors.alias_not_found(arn)
            old = store.get_key(conn, current)
            if old is not None:
                self.keys.authorize(ctx, conn, "kms:UpdateAlias", old)
            key = self._alias_target(ctx, conn, params["TargetKeyId"], "kms:UpdateAlias")
            conn.execute(update(kms_aliases).where(
                (kms_aliases.c.account_id == ctx.account_id) & (kms_aliases.c.region == ctx.region)
                & (kms_aliases.c.alias_name == name)).values(target_key_id=key.key_id, updated_at=store.now()))
        return {}

    def delete_alias(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        name = params["AliasName"]
        if not name.startswith(ALIAS_PREFIX):
            raise errors.validation(f'Alias must start with the prefix "{ALIAS_PREFIX}". Please see {ALIAS_DOC}')
        arn = store.alias_arn(ctx.region, ctx.account_id, name)
        ctx.authorize("kms:DeleteAlias", arn, context={"kms:CallerAccount": ctx.account_id})
        with self.app.db.begin() as conn:
            current = store.alias_target(conn, ctx.account_id, ctx.region, name)
            if current is None:
                raise errors.alias_not_found(arn)
            key = store.get_key(conn, current)
            if key is not None:
                self.keys.authorize(ctx, conn, "kms:DeleteAlias", key)
            conn.execute(delete(kms_aliases).where(
                (kms_aliases.c.account_id == ctx.account_id) & (kms_aliases.c.region == ctx.region)
                & (kms_aliases.c.alias_name == name)))
        return {}

    def list_aliases(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("kms:ListAliases", "*", context={"kms:CallerAccount": ctx.account_id})
        limit = params.get("Limit") or 50
        q = select(kms_aliases).join(kms_keys, kms_keys.c.key_id == kms_aliases.c.target_key_id).where(
            (kms_aliases.c.account_id == ctx.account_id) & (kms_aliases.c.region == ctx.region) & _not_deleted())
        if params.get("Marker"):
            q = q.where(kms_aliases.c.alias_name > params["Marker"])
        with self.app.db.read() as conn:
            if params.get("KeyId"):
                ref = self.keys.ref(ctx, params["KeyId"], aliases=False)
                if ref.account_id != ctx.account_id:
                    raise errors.key_not_found(ref.arn)
                q = q.where(kms_aliases.c.target_key_id == store.find_key(conn, ref).key_id)
            rows = list(conn.execute(q.order_by(kms_aliases.c.alias_name).limit(limit + 1)).mappings())
        shown, truncated = rows[:limit], len(rows) > limit
        out: dict[str, Any] = {"Aliases": [{
            "AliasName": r["alias_name"], "AliasArn": store.alias_arn(r["region"], r["account_id"], r["alias_name"]),
            "TargetKeyId": r["target_key_id"], "CreationDate": r["created_at"], "LastUpdatedDate": r["updated_at"],
        } for r in shown], "Truncated": truncated}
        if truncated:
            out["NextMarker"] = shown[-1]["alias_name"]
        return out

    # ------------------------------------------------------------------------------ cryptography
    def encrypt(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        _check_algorithm(params.get("EncryptionAlgorithm"))
        blob, key, _material = self.keys.encrypt(ctx, params["KeyId"], params["Plaintext"],
                                                 params.get("EncryptionContext"), dry_run=bool(params.get("DryRun")))
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": SYMMETRIC_DEFAULT}

    def decrypt(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        _check_algorithm(params.get("EncryptionAlgorithm"))
        if params.get("Recipient"):
            raise errors.unsupported("Decrypt for a Nitro Enclaves recipient is not supported by this server.")
        if not params.get("CiphertextBlob"):
            raise errors.validation("CiphertextBlob is required.")
        result = self.keys.decrypt(ctx, params["CiphertextBlob"], params.get("EncryptionContext"),
                                   key_id=params.get("KeyId"), dry_run=bool(params.get("DryRun")))
        return {"KeyId": result.key.arn, "Plaintext": result.plaintext, "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
                "KeyMaterialId": result.material_id}

    def generate_data_key(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("Recipient"):
            raise errors.unsupported("GenerateDataKey for a Nitro Enclaves recipient is not supported by this "
                                     "server.")
        size = _data_key_size(params)
        data_key = self.keys.generate_data_key(ctx, params["KeyId"], size, params.get("EncryptionContext"),
                                               dry_run=bool(params.get("DryRun")))
        return {"CiphertextBlob": data_key.ciphertext, "Plaintext": data_key.plaintext, "KeyId": data_key.key.arn,
                "KeyMaterialId": data_key.material_id}

    def generate_data_key_without_plaintext(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        size = _data_key_size(params)
        data_key = self.keys.generate_data_key(ctx, params["KeyId"], size, params.get("EncryptionContext"),
                                               action="kms:GenerateDataKeyWithoutPlaintext",
                                               dry_run=bool(params.get("DryRun")))
        return {"CiphertextBlob": data_key.ciphertext, "KeyId": data_key.key.arn,
                "KeyMaterialId": data_key.material_id}

    def re_encrypt(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        _check_algorithm(params.get("SourceEncryptionAlgorithm"))
        _check_algorithm(params.get("DestinationEncryptionAlgorithm"))
        if not params.get("CiphertextBlob"):
            raise errors.validation("CiphertextBlob is required.")
        dry_run = bool(params.get("DryRun"))
        source = self.keys.decrypt(ctx, params["CiphertextBlob"], params.get("SourceEncryptionContext"),
                                   key_id=params.get("SourceKeyId"), action="kms:ReEncryptFrom")
        blob, key, material_id = self.keys.encrypt(ctx, params["DestinationKeyId"], source.plaintext,
                                                   params.get("DestinationEncryptionContext"),
                                                   action="kms:ReEncryptTo", dry_run=dry_run)
        return {"CiphertextBlob": blob, "SourceKeyId": source.key.arn, "KeyId": key.arn,
                "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT, "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
                "SourceKeyMaterialId": source.material_id, "DestinationKeyMaterialId": material_id}

    def generate_random(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        ctx.authorize("kms:GenerateRandom", "*", context={"kms:CallerAccount": ctx.account_id})
        if params.get("CustomKeyStoreId") or params.get("Recipient"):
            raise errors.unsupported("GenerateRandom from a custom key store or for a recipient is not supported by "
                                     "this server.")
        count = params.get("NumberOfBytes")
        if count is None:
            raise errors.validation("NumberOfBytes is required.")
        return {"Plaintext": secrets.token_bytes(count)}

    # ------------------------------------------------------------------------------------- rotation
    def enable_key_rotation(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        period = params.get("RotationPeriodInDays") or store.DEFAULT_ROTATION_DAYS
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:EnableKeyRotation", lock=True)
            if not ROTATION_DAYS[0] <= period <= ROTATION_DAYS[1]:
                raise errors.validation(f"RotationPeriodInDays value {period} is out of range. It must be between "
                                        f"{ROTATION_DAYS[0]} and {ROTATION_DAYS[1]} (inclusive).")
            check_usable(key)
            self._update(conn, key, rotation_enabled=True, rotation_period_days=period,
                         next_rotation_at=store.now() + timedelta(days=period))
        return {}

    def disable_key_rotation(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:DisableKeyRotation", lock=True)
            check_usable(key)
            self._update(conn, key, rotation_enabled=False, next_rotation_at=None)
        return {}

    def get_key_rotation_status(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.read() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:GetKeyRotationStatus", cross_account=True)
        if key.state == PENDING_DELETION:
            raise errors.pending_deletion(key.arn)
        out: dict[str, Any] = {"KeyRotationEnabled": key.rotation_enabled, "KeyId": key.arn}
        if key.rotation_enabled:
            out["RotationPeriodInDays"] = key.rotation_period_days
            out["NextRotationDate"] = key.next_rotation_at
        return out

    def rotate_key_on_demand(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:RotateKeyOnDemand", lock=True)
            check_usable(key)
            if store.count_rotations(conn, key.key_id, "ON_DEMAND") >= MAX_ON_DEMAND_ROTATIONS:
                raise errors.limit_exceeded(f"The key {key.arn} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} "
                                            "on-demand rotations.")
            store.rotate(conn, self.keys.master, key, "ON_DEMAND")
        return {"KeyId": key.arn}

    def list_key_rotations(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.read() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:ListKeyRotations")
            rows = store.list_rotations(conn, key.key_id)
        marker = params.get("Marker")
        if marker is not None:
            if not marker.isdigit():
                raise errors.invalid_marker()
            rows = [r for r in rows if r.version > int(marker)]
        shown, truncated = _page(rows, params.get("Limit"), 100)
        out: dict[str, Any] = {"Rotations": [{
            "KeyId": key.arn, "KeyMaterialId": r.material_id, "RotationDate": r.created_at,
            "RotationType": r.rotation_type, "KeyMaterialState": "CURRENT" if r.version == key.current_version
            else "NON_CURRENT",
        } for r in shown], "Truncated": truncated}
        if truncated:
            out["NextMarker"] = str(shown[-1].version)
        return out

    # ------------------------------------------------------------------------------------------ tags
    def tag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        new = params["Tags"]
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:TagResource", lock=True)
            if key.state == PENDING_DELETION:
                raise errors.pending_deletion(key.arn)
            _check_tags(new)
            merged = {t["TagKey"]: t["TagValue"] for t in key.tags}
            merged.update({t["TagKey"]: t["TagValue"] for t in new})
            tags = [{"TagKey": k, "TagValue": v} for k, v in merged.items()]
            _check_tags(tags)
            self._update(conn, key, tags=tags)
        return {}

    def untag_resource(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        drop = set(params["TagKeys"])
        with self.app.db.begin() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:UntagResource", lock=True)
            if key.state == PENDING_DELETION:
                raise errors.pending_deletion(key.arn)
            self._update(conn, key, tags=[t for t in key.tags if t["TagKey"] not in drop])
        return {}

    def list_resource_tags(self, ctx: RequestContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.app.db.read() as conn:
            key = self._managed_key(ctx, conn, params["KeyId"], "kms:ListResourceTags")
        return {"Tags": key.tags, "Truncated": False}

