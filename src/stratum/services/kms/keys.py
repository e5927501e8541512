"""Keys, key material and aliases in the database: identifiers, lookups, creation, rotation.

All functions that take a connection leave the transaction to the caller. Key material is
unsealed under the master key on first use and cached in memory (a version's material never
changes, so the cache needs no invalidation).
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from . import crypto, errors
from .tables import kms_aliases, kms_key_materials, kms_keys

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
ENABLED, DISABLED, PENDING_DELETION = "Enabled", "Disabled", "PendingDeletion"
CUSTOMER, AWS = "CUSTOMER", "AWS"
DEFAULT_ROTATION_DAYS = 365
_KEY_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")
_MATERIAL_CACHE_LIMIT = 4096


def now() -> datetime:
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, alias_name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{alias_name}"


@dataclass(frozen=True)
class Key:
    key_id: str
    account_id: str
    region: str
    arn: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: str
    state: str
    policy: str
    rotation_enabled: bool
    rotation_period_days: int | None
    next_rotation_at: datetime | None
    current_version: int
    deletion_date: datetime | None
    pending_window_days: int | None
    tags: list[dict[str, str]]
    created_at: datetime

    def rotation_due(self, at: datetime) -> bool:
        return self.rotation_enabled and self.next_rotation_at is not None and self.next_rotation_at <= at

    def gone(self, at: datetime) -> bool:
        """Past its deletion date: deleted for every purpose (rows are purged lazily)."""
        return self.state == PENDING_DELETION and self.deletion_date is not None and self.deletion_date <= at


def _key(row: Any) -> Key:
    data = dict(row)
    data["tags"] = data["tags"] or []
    data["description"] = data["description"] or ""
    return Key(**data)


# ---------------------------------------------------------------------------------------- identifiers
@dataclass(frozen=True)
class KeyRef:
    """What a KeyId parameter names: a key or an alias, in one account and region."""

    kind: str  # "key" | "alias"
    account_id: str
    region: str
    name: str  # key id (UUID) or alias name ("alias/...")
    given: str  # the identifier as the caller wrote it

    @property
    def arn(self) -> str:
        if self.kind == "key":
            return key_arn(self.region, self.account_id, self.name)
        return alias_arn(self.region, self.account_id, self.name)


def parse_ref(value: str, account_id: str, region: str, *, aliases: bool = True) -> KeyRef:
    """Key id, key ARN, alias name or alias ARN (the last two only where the operation takes them)."""
    m = _ARN_RE.match(value)
    if m is not None:
        arn_region, arn_account, kind, name = m.groups()
        if kind == "key" and _KEY_ID_RE.match(name):
            return KeyRef("key", arn_account, arn_region, name.lower(), value)
        if kind == "alias" and aliases:
            return KeyRef("alias", arn_account, arn_region, f"alias/{name}", value)
        raise errors.invalid_key_id(value) if kind == "key" else errors.not_found(f"Invalid arn {value}")
    if _KEY_ID_RE.match(value):
        return KeyRef("key", account_id, region, value.lower(), value)
    if value.startswith("alias/") and aliases:
        return KeyRef("alias", account_id, region, value, value)
    raise errors.invalid_key_id(value)


# -------------------------------------------------------------------------------------------- lookups
def get_key(conn: Connection, key_id: str, *, lock: bool = False) -> Key | None:
    q = select(kms_keys).where(kms_keys.c.key_id == key_id)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).mappings().first()
    if row is None:
        return None
    key = _key(row)
    return None if key.gone(now()) else key


def find_key(conn: Connection, ref: KeyRef, *, lock: bool = False) -> Key:
    """The key a reference names (following an alias), or KMS's NotFoundException."""
    key_id = ref.name
    if ref.kind == "alias":
        target = conn.execute(select(kms_aliases.c.target_key_id).where(
            (kms_aliases.c.account_id == ref.account_id) & (kms_aliases.c.region == ref.region)
            & (kms_aliases.c.alias_name == ref.name))).scalar()
        if target is None:
            raise errors.alias_not_found(ref.arn)
        key_id = target
    key = get_key(conn, key_id, lock=lock)
    if key is None or key.account_id != ref.account_id or key.region != ref.region:
        raise errors.key_not_found(ref.arn if ref.kind == "key" else key_arn(ref.region, ref.account_id, key_id))
    return key


def key_aliases(conn: Connection, key_id: str) -> list[str]:
    return [r[0] for r in conn.execute(select(kms_aliases.c.alias_name).where(
        kms_aliases.c.target_key_id == key_id).order_by(kms_aliases.c.alias_name))]


def alias_target(conn: Connection, account_id: str, region: str, alias_name: str) -> str | None:
    return conn.execute(select(kms_aliases.c.target_key_id).where(
        (kms_aliases.c.account_id == account_id) & (kms_aliases.c.region == region)
        & (kms_aliases.c.alias_name == alias_name))).scalar()


# ------------------------------------------------------------------------------------------- creation
@dataclass
class NewKey:
    account_id: str
    region: str
    policy: str
    description: str = ""
    key_manager: str = CUSTOMER
    tags: list[dict[str, str]] | None = None
    rotation_enabled: bool = False
    rotation_period_days: int | None = None


def create_key(conn: Connection, master: crypto.MasterKey, spec: NewKey) -> Key:
    purge_deleted(conn, spec.account_id, spec.region)
    key_id = str(uuid.uuid4())
    created = now()
    values: dict[str, Any] = {
        "key_id": key_id, "account_id": spec.account_id, "region": spec.region,
        "arn": key_arn(spec.region, spec.account_id, key_id), "description": spec.description,
        "key_usage": ENCRYPT_DECRYPT, "key_spec": SYMMETRIC_DEFAULT, "origin": "AWS_KMS",
        "key_manager": spec.key_manager, "state": ENABLED, "policy": spec.policy,
        "rotation_enabled": spec.rotation_enabled, "rotation_period_days": spec.rotation_period_days,
        "next_rotation_at": created + timedelta(days=spec.rotation_period_days)
        if spec.rotation_enabled and spec.rotation_period_days else None,
        "current_version": 1, "deletion_date": None, "pending_window_days": None,
        "tags": spec.tags or [], "created_at": created,
    }
    conn.execute(insert(kms_keys).values(**values))
    add_material(conn, master, key_id, 1, None, created)
    return Key(**values)


def add_material(conn: Connection, master: crypto.MasterKey, key_id: str, version: int,
                 rotation_type: str | None, at: datetime) -> str:
    material = crypto.new_material()
    material_id = hashlib.sha256(b"stratum-kms-material-id" + material).hexdigest()
    conn.execute(insert(kms_key_materials).values(
        key_id=key_id, version=version, material_id=material_id, rotation_type=rotation_type, created_at=at,
        sealed=master.seal(material, crypto.material_associated_data(key_id, version))))
    return material_id


def rotate(conn: Connection, master: crypto.MasterKey, key: Key, rotation_type: str) -> Key:
    """Add a new key material version and make it current; old versions keep decrypting."""
    at = now()
    version = key.current_version + 1
    add_material(conn, master, key.key_id, version, rotation_type, at)
    values: dict[str, Any] = {"current_version": version}
    if rotation_type == "AUTOMATIC":  # on-demand rotations leave the automatic schedule alone
        values["next_rotation_at"] = at + timedelta(days=key.rotation_period_days or DEFAULT_ROTATION_DAYS)
    conn.execute(update(kms_keys).where(kms_keys.c.key_id == key.key_id).values(**values))
    return replace(key, **values)


def count_rotations(conn: Connection, key_id: str, rotation_type: str) -> int:
    return int(conn.execute(select(func.count()).select_from(kms_key_materials).where(
        (kms_key_materials.c.key_id == key_id) & (kms_key_materials.c.rotation_type == rotation_type))).scalar()
        or 0)


def list_rotations(conn: Connection, key_id: str) -> list[Any]:
    return list(conn.execute(select(kms_key_materials.c.version, kms_key_materials.c.material_id,
                                    kms_key_materials.c.rotation_type, kms_key_materials.c.created_at).where(
        (kms_key_materials.c.key_id == key_id) & kms_key_materials.c.rotation_type.is_not(None))
        .order_by(kms_key_materials.c.version)))


def material_id(conn: Connection, key_id: str, version: int) -> str | None:
    return conn.execute(select(kms_key_materials.c.material_id).where(
        (kms_key_materials.c.key_id == key_id) & (kms_key_materials.c.version == version))).scalar()


def purge_deleted(conn: Connection, account_id: str, region: str) -> None:
    """Remove keys whose deletion date has passed (they already behave as deleted)."""
    expired = [r[0] for r in conn.execute(select(kms_keys.c.key_id).where(
        (kms_keys.c.account_id == account_id) & (kms_keys.c.region == region)
        & (kms_keys.c.state == PENDING_DELETION) & (kms_keys.c.deletion_date <= now())))]
    if expired:
        conn.execute(delete(kms_aliases).where(kms_aliases.c.target_key_id.in_(expired)))
        conn.execute(delete(kms_key_materials).where(kms_key_materials.c.key_id.in_(expired)))
        conn.execute(delete(kms_keys).where(kms_keys.c.key_id.in_(expired)))


# ------------------------------------------------------------------------------------ material cache
class MaterialCache:
    """Unsealed key material by (key id, version)."""

    def __init__(self, master: crypto.MasterKey) -> None:
        self.master = master
        self._items: dict[tuple[str, int], tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection, key_id: str, version: int) -> tuple[bytes, str] | None:
        """(material, material id), or None when the key has no such version."""
        hit = self._items.get((key_id, version))
        if hit is not None:
            return hit
        row = conn.execute(select(kms_key_materials.c.sealed, kms_key_materials.c.material_id).where(
            (kms_key_materials.c.key_id == key_id) & (kms_key_materials.c.version == version))).first()
        if row is None:
            return None
        try:
            material = self.master.unseal(bytes(row.sealed), crypto.material_associated_data(key_id, version))
        except crypto.DecryptionFailed:
            # The database was written under another master key: nothing here can be decrypted.
            raise errors.internal("Key material cannot be unsealed with this server's master key.") from None
        with self._lock:
            if len(self._items) >= _MATERIAL_CACHE_LIMIT:
                self._items.clear()
            self._items[(key_id, version)] = (material, row.material_id)
        return material, row.material_id
