"""Using keys: Encrypt, Decrypt and GenerateDataKey with their authorization, for the KMS API and for
services that call KMS on a caller's behalf (S3 server-side encryption).

Every use is authorized as the *caller*, against the key policy (which must allow, as AWS requires:
a grant to the account root delegates to the caller's IAM policies) and with KMS's condition keys.
A service acting for the caller passes ``via_service`` ("s3.<region>.amazonaws.com"), which becomes
``kms:ViaService``; a refusal then surfaces in that service's own AccessDenied error.
"""

from __future__ import annotations

import secrets
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError

from . import crypto, errors, policies
from . import keys as store
from .keys import AWS, DISABLED, PENDING_DELETION, Key, KeyRef, MaterialCache
from .tables import kms_aliases

if TYPE_CHECKING:
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext

DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}
AWS_MANAGED_DESCRIPTIONS = {"s3": "Default key that protects my S3 objects when no other key is defined"}


@dataclass(frozen=True)
class DataKey:
    plaintext: bytes
    ciphertext: bytes
    key: Key
    material_id: str


@dataclass(frozen=True)
class Decrypted:
    plaintext: bytes
    key: Key
    material_id: str


def check_usable(key: Key) -> None:
    """Cryptographic operations need an enabled key."""
    if key.state == DISABLED:
        raise errors.disabled(key.arn)
    if key.state == PENDING_DELETION:
        raise errors.pending_deletion(key.arn)


def encryption_context_keys(context: dict[str, str] | None) -> dict[str, Any]:
    if not context:
        return {}
    keys: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
    keys["kms:EncryptionContextKeys"] = list(context)
    return keys


class KeyService:
    def __init__(self, app: AppState) -> None:
        self.app = app
        self.master = crypto.master_key(app.settings.master_key_path)
        self.materials = MaterialCache(self.master)

    # ------------------------------------------------------------------------------ authorization
    def authorize(self, ctx: RequestContext, conn: Connection, action: str, key: Key, *,
                  ref: KeyRef | None = None, encryption_context: dict[str, str] | None = None,
                  via_service: str | None = None) -> None:
        context: dict[str, Any] = {
            "kms:CallerAccount": ctx.account_id, "kms:KeySpec": key.key_spec, "kms:KeyUsage": key.key_usage,
            "kms:KeyOrigin": key.origin, **encryption_context_keys(encryption_context),
        }
        if via_service:
            context["kms:ViaService"] = via_service
        if ref is not None and ref.kind == "alias":
            context["kms:RequestAlias"] = ref.name
        aliases = store.key_aliases(conn, key.key_id)
        if aliases:
            context["kms:ResourceAliases"] = aliases
        for tag in key.tags:
            context[f"aws:ResourceTag/{tag['TagKey']}"] = tag["TagValue"]
        ctx.authorize(action, key.arn, resource_account=key.account_id, resource_policy=key.policy,
                      context=context, resource_policy_required=True)

    # ------------------------------------------------------------------------------------- lookups
    def ref(self, ctx: RequestContext, key_id: str, *, region: str | None = None, aliases: bool = True) -> KeyRef:
        return store.parse_ref(key_id, ctx.account_id, region or ctx.region, aliases=aliases)

    def _current(self, key: Key) -> Key:
        """The key with its newest material, rotating first when an automatic rotation is due."""
        if not key.rotation_due(store.now()):
            return key
        with self.app.db.begin() as conn:
            fresh = store.get_key(conn, key.key_id, lock=True)
            if fresh is None:
                raise errors.key_not_found(key.arn)
            if fresh.rotation_due(store.now()):
                fresh = store.rotate(conn, self.master, fresh, "AUTOMATIC")
            return fresh

    def _material(self, conn: Connection, key: Key, version: int) -> tuple[bytes, str]:
        found = self.materials.get(conn, key.key_id, version)
        if found is None:
            raise errors.invalid_ciphertext()
        return found

    def aws_managed_key(self, account_id: str, region: str, service: str) -> Key:
        """The account's AWS managed key for ``service`` (alias/aws/<service>), created on first use."""
        alias = f"alias/aws/{service}"
        with self.app.db.read() as conn:
            target = store.alias_target(conn, account_id, region, alias)
            key = store.get_key(conn, target) if target else None
        if key is not None:
            return key
        try:
            with self.app.db.begin() as conn:
                target = store.alias_target(conn, account_id, region, alias)
                key = store.get_key(conn, target) if target else None
                if key is not None:
                    return key
                key = store.create_key(conn, self.master, store.NewKey(
                    account_id, region, policies.aws_managed_key_policy(account_id, service, region),
                    AWS_MANAGED_DESCRIPTIONS.get(service, f"Default key for {service}"), key_manager=AWS,
                    rotation_enabled=True, rotation_period_days=store.DEFAULT_ROTATION_DAYS))
                at = store.now()
                conn.execute(insert(kms_aliases).values(account_id=account_id, region=region, alias_name=alias,
                                                        target_key_id=key.key_id, created_at=at, updated_at=at))
                return key
        except IntegrityError:  # created concurrently by another request
            with self.app.db.read() as conn:
                target = store.alias_target(conn, account_id, region, alias)
                key = store.get_key(conn, target) if target else None
            if key is None:
                raise
            return key

    # ----------------------------------------------------------------------------------- operations
    def encrypt(self, ctx: RequestContext, key_id: str, plaintext: bytes, context: dict[str, str] | None, *,
                via_service: str | None = None, region: str | None = None, action: str = "kms:Encrypt",
                dry_run: bool = False) -> tuple[bytes, Key, str]:
        """(ciphertext blob, key, material id) for ``plaintext`` under the key ``key_id`` names."""
        ref = self.ref(ctx, key_id, region=region)
        with self.app.db.read() as conn:
            key = store.find_key(conn, ref)
            self.authorize(ctx, conn, action, key, ref=ref, encryption_context=context, via_service=via_service)
        check_usable(key)
        if dry_run:
            raise errors.dry_run()
        return self._seal(key, plaintext, context)

    def generate_data_key(self, ctx: RequestContext, key_id: str, size: int, context: dict[str, str] | None, *,
                          via_service: str | None = None, region: str | None = None,
                          action: str = "kms:GenerateDataKey", dry_run: bool = False) -> DataKey:
        plaintext = secrets.token_bytes(size)
        blob, key, material_id = self.encrypt(ctx, key_id, plaintext, context, via_service=via_service,
                                              region=region, action=action, dry_run=dry_run)
        return DataKey(plaintext, blob, key, material_id)

    def decrypt(self, ctx: RequestContext, blob: bytes, context: dict[str, str] | None, *,
                key_id: str | None = None, via_service: str | None = None, region: str | None = None,
                action: str = "kms:Decrypt", dry_run: bool = False) -> Decrypted:
        """Decrypt a ciphertext blob; the blob names its key, ``key_id`` (if given) must agree."""
        with self.app.db.read() as conn:
            header, key = self._blob_key(conn, blob, region or ctx.region)
            if key_id is not None:
                ref = self.ref(ctx, key_id, region=region)
                if store.find_key(conn, ref).key_id != key.key_id:
                    raise errors.incorrect_key()
            self.authorize(ctx, conn, action, key, encryption_context=context, via_service=via_service)
            check_usable(key)
            if dry_run:
                raise errors.dry_run()
            return self._open(conn, header, blob, key, context)

    # ------------------------------------------------------------------------- server-internal use
    # For server components that decide access themselves and have no caller to authorize (the
    # pipeline engine reading a file its own execution wrote): no policy is evaluated, but the key's
    # state still applies. Only reads need this: writers go through the S3 API as a principal.
    def decrypt_internal(self, blob: bytes, context: dict[str, str] | None, region: str) -> Decrypted:
        with self.app.db.read() as conn:
            header, key = self._blob_key(conn, blob, region)
            check_usable(key)
            return self._open(conn, header, blob, key, context)

    # ------------------------------------------------------------------------------------- plumbing
    def _seal(self, key: Key, plaintext: bytes, context: dict[str, str] | None) -> tuple[bytes, Key, str]:
        key = self._current(key)
        with self.app.db.read() as conn:
            material, material_id = self._material(conn, key, key.current_version)
        return crypto.encrypt_blob(key.key_id, key.current_version, material, plaintext, context), key, material_id

    def _blob_key(self, conn: Connection, blob: bytes, region: str) -> tuple[crypto.BlobHeader, Key]:
        try:
            header = crypto.parse_blob(blob)
        except ValueError:
            raise errors.invalid_ciphertext() from None
        key = store.get_key(conn, header.key_id)
        if key is None or key.region != region:
            raise errors.invalid_ciphertext()
        return header, key

    def _open(self, conn: Connection, header: crypto.BlobHeader, blob: bytes, key: Key,
              context: dict[str, str] | None) -> Decrypted:
        material, material_id = self._material(conn, key, header.version)
        try:
            plaintext = crypto.decrypt_blob(header, blob, material, context)
        except crypto.DecryptionFailed:
            raise errors.invalid_ciphertext() from None
        return Decrypted(plaintext, key, material_id)


_SERVICES: weakref.WeakKeyDictionary[AppState, KeyService] = weakref.WeakKeyDictionary()


def key_service(app: AppState) -> KeyService:
    """The one KeyService of a running server (shared by the KMS provider and S3)."""
    found = _SERVICES.get(app)
    if found is None:
        found = _SERVICES.setdefault(app, KeyService(app))
    return found
