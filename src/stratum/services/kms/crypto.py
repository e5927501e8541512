"""The cryptography under KMS (and S3 server-side encryption): the server master key, sealed key
material, and the ciphertext blobs Encrypt/GenerateDataKey return.

* The master key (256 bits) is the root of everything. It comes from ``STRATUM_MASTER_KEY``
  (base64, so several servers sharing one database can share it) or from a key file created with
  0600 permissions on first start. Losing it loses every encrypted object and key.
* KMS key material (one 256-bit key per key version) is stored sealed with AES-256-GCM under the
  master key, with the key id and version as associated data so a row cannot be moved to another key.
* A ciphertext blob is ``version(1) || key uuid(16) || material version(4) || nonce(12) || AES-GCM
  ciphertext+tag`` and the associated data is that header plus the canonical encryption context, so
  Decrypt finds the key from the blob alone and fails unless the same context is supplied.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
import struct
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MASTER_KEY_ENV = "STRATUM_MASTER_KEY"
MASTER_KEY_FILE = "master.key"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

BLOB_VERSION = 1
_BLOB_HEADER = struct.Struct(">B16sI")  # version, key id (UUID bytes), key material version
MIN_BLOB_BYTES = _BLOB_HEADER.size + NONCE_BYTES + TAG_BYTES


class MasterKeyError(RuntimeError):
    """The master key is missing, malformed or unreadable: the server must not start without it."""


class DecryptionFailed(Exception):
    """Authentication failed: wrong key, wrong associated data or tampered bytes."""


# ----------------------------------------------------------------------------------------- master key
class MasterKey:
    """The server's root key. Only ever used to seal other keys and to derive service keys."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"the master key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self._key = key

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def unseal(self, sealed: bytes, associated: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
        except (InvalidTag, ValueError):
            raise DecryptionFailed("sealed value does not open under this master key") from None

    def derive(self, purpose: str) -> bytes:
        """A 256-bit key for one purpose (e.g. the SSE-S3 root key), stable for this master key."""
        return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                    info=f"stratum/{purpose}".encode()).derive(self._key)


_LOCK = threading.Lock()
_LOADED: dict[str, MasterKey] = {}


def master_key(path: Path) -> MasterKey:
    """The master key for a server whose key file is ``path`` (loaded once per process)."""
    env = os.environ.get(MASTER_KEY_ENV)
    cache_key = f"env:{env}" if env else str(path)
    with _LOCK:
        found = _LOADED.get(cache_key)
        if found is None:
            found = MasterKey(_decode_env_key(env) if env else _load_or_create(path))
            _LOADED[cache_key] = found
        return found


def _decode_env_key(value: str) -> bytes:
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 2 * KEY_BYTES else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raise MasterKeyError(f"{MASTER_KEY_ENV} must be {KEY_BYTES} bytes, base64- or hex-encoded") from None
    if len(raw) != KEY_BYTES:
        raise MasterKeyError(f"{MASTER_KEY_ENV} must decode to {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def _load_or_create(path: Path) -> bytes:
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a private temporary file and hard-linked into place: another process starting at the
    # same moment either wins the link (and we read its key) or finds the complete file, never half.
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) != KEY_BYTES:
        raise MasterKeyError(f"{path}: a master key file holds exactly {KEY_BYTES} bytes, found {len(data)}")
    return data


# --------------------------------------------------------------------------------------- key material
def new_material() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def material_associated_data(key_id: str, version: int) -> bytes:
    return f"stratum-kms-material:{key_id}:{version}".encode()


# ----------------------------------------------------------------------------------- ciphertext blobs
def canonical_context(context: dict[str, str] | None) -> bytes:
    """Encryption context as associated data: order-independent, as KMS treats it."""
    if not context:
        return b""
    return json.dumps(sorted(context.items()), separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class BlobHeader:
    key_id: str
    version: int
    raw: bytes


def parse_blob(blob: bytes) -> BlobHeader:
    """The key id and material version a ciphertext blob names; ValueError when it is not one."""
    if len(blob) < MIN_BLOB_BYTES:
        raise ValueError("ciphertext too short")
    version, key_bytes, material_version = _BLOB_HEADER.unpack_from(blob)
    if version != BLOB_VERSION:
        raise ValueError("unknown ciphertext version")
    return BlobHeader(str(uuid.UUID(bytes=key_bytes)), material_version, blob[:_BLOB_HEADER.size])


def encrypt_blob(key_id: str, version: int, material: bytes, plaintext: bytes,
                 context: dict[str, str] | None) -> bytes:
    header = _BLOB_HEADER.pack(BLOB_VERSION, uuid.UUID(key_id).bytes, version)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return header + nonce + AESGCM(material).encrypt(nonce, plaintext, header + canonical_context(context))


def decrypt_blob(header: BlobHeader, blob: bytes, material: bytes, context: dict[str, str] | None) -> bytes:
    start = len(header.raw)
    nonce, body = blob[start:start + NONCE_BYTES], blob[start + NONCE_BYTES:]
    try:
        return AESGCM(material).decrypt(nonce, body, header.raw + canonical_context(context))
    except InvalidTag:
        raise DecryptionFailed("ciphertext does not authenticate") from None
