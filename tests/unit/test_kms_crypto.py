"""The cryptography under KMS and S3 SSE: master key handling, ciphertext blobs, chunked object blobs."""

from __future__ import annotations

import base64
import io
import os
import random
import secrets
import stat
import threading
from pathlib import Path

import pytest

from stratum.protocol.errors import ServiceError
from stratum.services.kms import crypto
from stratum.services.kms.keys import parse_ref
from stratum.services.s3 import blobcrypt

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


# ---------------------------------------------------------------------------------------- master key
def test_master_key_file_is_created_once_with_private_permissions(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.MASTER_KEY_ENV, raising=False)
    path = tmp_path / "data" / "master.key"
    first = crypto._load_or_create(path)
    assert len(first) == 32 and path.read_bytes() == first
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert crypto._load_or_create(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]  # no temporary files left behind


def test_concurrent_first_start_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(crypto._load_or_create(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] == path.read_bytes()


def test_master_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = secrets.token_bytes(32)
    monkeypatch.setenv(crypto.MASTER_KEY_ENV, base64.b64encode(raw).decode())
    key = crypto.master_key(tmp_path / "unused.key")
    assert not (tmp_path / "unused.key").exists()
    assert crypto.MasterKey(raw).unseal(key.seal(b"x", b"ad"), b"ad") == b"x"
    monkeypatch.setenv(crypto.MASTER_KEY_ENV, raw.hex())
    assert crypto.MasterKey(raw).unseal(crypto.master_key(tmp_path / "unused.key").seal(b"y", b""), b"") == b"y"
    for bad in ("too-short", base64.b64encode(b"x" * 16).decode()):
        monkeypatch.setenv(crypto.MASTER_KEY_ENV, bad)
        with pytest.raises(crypto.MasterKeyError):
            crypto.master_key(tmp_path / "unused.key")


def test_malformed_key_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(crypto.MASTER_KEY_ENV, raising=False)
    path = tmp_path / "master.key"
    path.write_bytes(b"short")
    with pytest.raises(crypto.MasterKeyError):
        crypto._load_or_create(path)


def test_sealed_material_is_bound_to_its_key_and_version() -> None:
    master = crypto.MasterKey(secrets.token_bytes(32))
    sealed = master.seal(b"material", crypto.material_associated_data(KEY_ID, 1))
    assert master.unseal(sealed, crypto.material_associated_data(KEY_ID, 1)) == b"material"
    with pytest.raises(crypto.DecryptionFailed):
        master.unseal(sealed, crypto.material_associated_data(KEY_ID, 2))
    with pytest.raises(crypto.DecryptionFailed):
        crypto.MasterKey(secrets.token_bytes(32)).unseal(sealed, crypto.material_associated_data(KEY_ID, 1))
    assert master.derive("a") == master.derive("a") != master.derive("b")


# ----------------------------------------------------------------------------------- ciphertext blobs
def test_ciphertext_blob_names_its_key_and_binds_the_context() -> None:
    material = secrets.token_bytes(32)
    blob = crypto.encrypt_blob(KEY_ID, 3, material, b"secret", {"b": "2", "a": "1"})
    header = crypto.parse_blob(blob)
    assert (header.key_id, header.version) == (KEY_ID, 3)
    assert crypto.decrypt_blob(header, blob, material, {"a": "1", "b": "2"}) == b"secret"
    for context in (None, {"a": "1"}, {"a": "1", "b": "3"}):
        with pytest.raises(crypto.DecryptionFailed):
            crypto.decrypt_blob(header, blob, material, context)
    # The header is authenticated: pointing the blob at another version fails.
    forged = bytearray(blob)
    forged[20] ^= 1
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_blob(crypto.parse_blob(bytes(forged)), bytes(forged), material, {"a": "1", "b": "2"})
    for bad in (b"", b"\x01" * 10, b"\x02" + blob[1:]):
        with pytest.raises(ValueError):
            crypto.parse_blob(bad)


def test_key_references() -> None:
    acct, region = "111122223333", "us-east-1"
    assert parse_ref(KEY_ID.upper(), acct, region).name == KEY_ID
    ref = parse_ref(f"arn:aws:kms:eu-west-1:444455556666:key/{KEY_ID}", acct, region)
    assert (ref.kind, ref.account_id, ref.region, ref.arn) == (
        "key", "444455556666", "eu-west-1", f"arn:aws:kms:eu-west-1:444455556666:key/{KEY_ID}")
    alias = parse_ref("alias/ml/artifacts", acct, region)
    assert (alias.kind, alias.arn) == ("alias", f"arn:aws:kms:{region}:{acct}:alias/ml/artifacts")
    assert parse_ref(f"arn:aws:kms:{region}:{acct}:alias/x", acct, region).name == "alias/x"
    for bad, aliases in (("nope", True), (f"arn:aws:kms:{region}:{acct}:key/not-a-uuid", True),
                         ("alias/x", False)):
        with pytest.raises(ServiceError) as exc:
            parse_ref(bad, acct, region, aliases=aliases)
        assert exc.value.code == "NotFoundException"


# -------------------------------------------------------------------------------------- object blobs
def _sealed(plain: bytes, key: bytes, pieces: int = 3) -> tuple[bytes, blobcrypt.PlainStats]:
    cut = sorted(random.sample(range(len(plain) + 1), min(pieces, len(plain) + 1)))
    parts = [plain[a:b] for a, b in zip([0, *cut], [*cut, len(plain)], strict=True)]
    stats = blobcrypt.PlainStats()
    return b"".join(blobcrypt.seal(parts, key, stats)), stats


@pytest.mark.parametrize("size", [0, 1, blobcrypt.CHUNK - 1, blobcrypt.CHUNK, blobcrypt.CHUNK + 1,
                                  3 * blobcrypt.CHUNK + 17])
def test_seal_and_open_ranges(size: int) -> None:
    rng = random.Random(size)
    plain = rng.randbytes(size)
    key = secrets.token_bytes(32)
    sealed, stats = _sealed(plain, key)
    assert len(sealed) == blobcrypt.sealed_size(size)
    assert stats.size == size
    assert blobcrypt.read_all(io.BytesIO(sealed), key, size) == plain
    if size >= 16:
        # Shorter plaintexts can turn up in random ciphertext by chance (one byte almost surely does).
        assert plain[:64] not in sealed
    for _ in range(25):
        if not size:
            break
        first = rng.randrange(size)
        length = rng.randrange(1, size - first + 1)
        got = b"".join(blobcrypt.open_range(io.BytesIO(sealed), key, size, first, length))
        assert got == plain[first:first + length]


def test_tampering_truncation_and_reordering_are_detected() -> None:
    key = secrets.token_bytes(32)
    size = 3 * blobcrypt.CHUNK
    plain = os.urandom(size)
    sealed, _ = _sealed(plain, key)
    header, body = sealed[:blobcrypt.HEADER], sealed[blobcrypt.HEADER:]
    records = [body[i:i + blobcrypt.RECORD] for i in range(0, len(body), blobcrypt.RECORD)]
    flipped = bytearray(sealed)
    flipped[blobcrypt.HEADER + 5] ^= 0x80
    swapped = header + records[1] + records[0] + records[2]
    truncated = header + records[0] + records[1]  # drops the final chunk
    for bad, claimed in ((bytes(flipped), size), (swapped, size), (truncated, 2 * blobcrypt.CHUNK),
                         (sealed[:-1], size)):
        with pytest.raises(blobcrypt.BlobIntegrityError):
            blobcrypt.read_all(io.BytesIO(bad), key, claimed)
    with pytest.raises(blobcrypt.BlobIntegrityError):
        blobcrypt.read_all(io.BytesIO(sealed), secrets.token_bytes(32), size)
    # Two seals of the same bytes under the same key never share a nonce (random salt).
    assert _sealed(plain, key)[0][:blobcrypt.HEADER] != sealed[:blobcrypt.HEADER]


@pytest.mark.parametrize("piece", [1, 1000, blobcrypt.CHUNK - 1, blobcrypt.CHUNK + 3, 5 * blobcrypt.CHUNK])
def test_seal_accepts_any_chunking(piece: int) -> None:
    plain = os.urandom(3 * blobcrypt.CHUNK + 17 if piece > 1 else 5000)
    key = secrets.token_bytes(32)
    stats = blobcrypt.PlainStats()
    sealed = b"".join(blobcrypt.seal((plain[i:i + piece] for i in range(0, len(plain), piece)), key, stats))
    assert len(sealed) == blobcrypt.sealed_size(len(plain)) and stats.size == len(plain)
    assert blobcrypt.read_all(io.BytesIO(sealed), key, len(plain)) == plain
