"""KMS against a running server with boto3 (and the AWS CLI): keys, aliases, real encryption, key
policies, cross-account use, rotation and the key state machine."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from stratum_testing import StratumServer

ADMIN_ACCESS = "arn:aws:iam::aws:policy/AdministratorAccess"


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err.get("Message", "")


def _policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _allow(principal: str | list[str], actions: str | list[str] = "kms:*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": actions, "Resource": "*", **extra}


def _user(server: StratumServer, account: str, *, managed: str | None = None,
          inline: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    """A new IAM user (ARN, client credentials) with the given policies."""
    iam = server.client("iam", account)
    name = _uid("u")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if managed:
        iam.attach_user_policy(UserName=name, PolicyArn=managed)
    if inline:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [inline]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return arn, {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}


@pytest.fixture
def kms(server: StratumServer) -> Any:
    return server.client("kms")


# ------------------------------------------------------------------------------------ key lifecycle
def test_create_describe_list_and_tag_keys(server: StratumServer, kms: Any) -> None:
    dev = server.account_id("dev")
    meta = kms.create_key(Description="pipeline artifacts", Tags=[{"TagKey": "team", "TagValue": "ml"}])["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    assert arn == f"arn:aws:kms:us-east-1:{dev}:key/{key_id}"
    assert (meta["AWSAccountId"], meta["KeyState"], meta["Enabled"], meta["KeyManager"]) == (dev, "Enabled", True,
                                                                                          "CUSTOMER")
    assert (meta["KeySpec"], meta["KeyUsage"], meta["Origin"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "AWS_KMS")
    assert meta["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"] and meta["Description"] == "pipeline artifacts"

    alias = f"alias/{_uid('art')}"
    kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    for ref in (key_id, arn, alias, f"arn:aws:kms:us-east-1:{dev}:{alias}"):
        assert kms.describe_key(KeyId=ref)["KeyMetadata"]["Arn"] == arn

    listed = []
    paginator = kms.get_paginator("list_keys")
    for page in paginator.paginate(PaginationConfig={"PageSize": 2}):
        listed.extend(k["KeyArn"] for k in page["Keys"])
    assert arn in listed

    kms.update_key_description(KeyId=key_id, Description="renamed")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "renamed"
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "env", "TagValue": "dev"}, {"TagKey": "team", "TagValue": "ds"}])
    kms.untag_resource(KeyId=arn, TagKeys=["env"])
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [{"TagKey": "team", "TagValue": "ds"}]
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]
    policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert policy["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{dev}:root"}

    # Keys are per account: another account neither lists it nor resolves its key id.
    other = server.client("kms", "test")
    assert arn not in [k["KeyArn"] for k in other.list_keys(Limit=1000)["Keys"]]
    with pytest.raises(ClientError) as exc:
        other.describe_key(KeyId=key_id)
    assert _error(exc)[0] == "NotFoundException"


def test_key_errors(kms: Any) -> None:
    with pytest.raises(ClientError) as exc:
        kms.describe_key(KeyId="not-a-key")
    assert _error(exc) == ("NotFoundException", "Invalid keyId not-a-key")
    missing = str(uuid.uuid4())
    with pytest.raises(ClientError) as exc:
        kms.describe_key(KeyId=missing)
    assert _error(exc)[0] == "NotFoundException" and missing in _error(exc)[1]
    with pytest.raises(ClientError) as exc:
        kms.describe_key(KeyId="alias/never-created")
    assert _error(exc)[0] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        kms.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    assert _error(exc)[0] == "UnsupportedOperationException"
    with pytest.raises(ClientError) as exc:
        kms.create_key(Policy="{not json")
    assert _error(exc)[0] == "MalformedPolicyDocumentException"


def test_aliases(kms: Any) -> None:
    first = kms.create_key()["KeyMetadata"]["KeyId"]
    second = kms.create_key()["KeyMetadata"]["KeyId"]
    name = f"alias/{_uid('a')}"
    kms.create_alias(AliasName=name, TargetKeyId=first)
    entry = kms.list_aliases(KeyId=first)["Aliases"]
    assert [(a["AliasName"], a["TargetKeyId"]) for a in entry] == [(name, first)]
    assert entry[0]["AliasArn"].endswith(f":{name}")
    with pytest.raises(ClientError) as exc:
        kms.create_alias(AliasName=name, TargetKeyId=second)
    assert _error(exc)[0] == "AlreadyExistsException"
    kms.update_alias(AliasName=name, TargetKeyId=second)
    assert kms.describe_key(KeyId=name)["KeyMetadata"]["KeyId"] == second
    assert kms.list_aliases(KeyId=first)["Aliases"] == []

    for bad, code in ((_uid("no-prefix"), "ValidationException"), ("alias/aws/mine", "NotAuthorizedException"),
                      ("alias/has:colon", "ValidationException")):
        with pytest.raises(ClientError) as exc:
            kms.create_alias(AliasName=bad, TargetKeyId=first)
        assert _error(exc)[0] == code, bad
    with pytest.raises(ClientError) as exc:
        kms.create_alias(AliasName=f"alias/{_uid('b')}", TargetKeyId=name)
    assert _error(exc) == ("ValidationException", "Aliases must refer to keys. Not aliases")

    kms.delete_alias(AliasName=name)
    with pytest.raises(ClientError) as exc:
        kms.delete_alias(AliasName=name)
    assert _error(exc)[0] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=name, Plaintext=b"x")
    assert _error(exc)[0] == "NotFoundException"


# ------------------------------------------------------------------------------------- cryptography
def test_encrypt_decrypt_with_encryption_context(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    context = {"pipeline": "train", "stage": "prod"}
    out = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"model secret", EncryptionContext=context)
    blob = out["CiphertextBlob"]
    assert out["KeyId"] == key["Arn"] and out["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert b"model secret" not in blob

    # The blob identifies its key: KeyId is optional, and context order does not matter.
    plain = kms.decrypt(CiphertextBlob=blob, EncryptionContext={"stage": "prod", "pipeline": "train"})
    assert (plain["Plaintext"], plain["KeyId"]) == (b"model secret", key["Arn"])
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=key["Arn"])["Plaintext"] == b"model secret"

    for wrong in ({}, {"pipeline": "train"}, {"pipeline": "train", "stage": "dev"}):
        with pytest.raises(ClientError) as exc:
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)
        assert _error(exc)[0] == "InvalidCiphertextException"
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    for bad in (bytes(tampered), b"\x01" + b"\x00" * 60, b"short"):
        with pytest.raises(ClientError) as exc:
            kms.decrypt(CiphertextBlob=bad, EncryptionContext=context)
        assert _error(exc)[0] == "InvalidCiphertextException"
    with pytest.raises(ClientError) as exc:
        kms.decrypt(CiphertextBlob=blob, EncryptionContext=context, KeyId=other["KeyId"])
    assert _error(exc)[0] == "IncorrectKeyException"

    # Two encryptions of the same plaintext differ (random nonce).
    again = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"model secret", EncryptionContext=context)["CiphertextBlob"]
    assert again != blob

    moved = kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=context, DestinationKeyId=other["Arn"],
                           DestinationEncryptionContext={"moved": "yes"})
    assert (moved["SourceKeyId"], moved["KeyId"]) == (key["Arn"], other["Arn"])
    assert kms.decrypt(CiphertextBlob=moved["CiphertextBlob"],
                       EncryptionContext={"moved": "yes"})["Plaintext"] == b"model secret"
    with pytest.raises(ClientError) as exc:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", DryRun=True)
    assert _error(exc)[0] == "DryRunOperationException"


def test_data_keys(kms: Any) -> None:
    key = kms.create_key()["KeyMetadata"]
    dk = kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256", EncryptionContext={"obj": "1"})
    assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == key["Arn"]
    assert kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"obj": "1"})["Plaintext"] == \
        dk["Plaintext"]
    # The data key is a real AES key: envelope encryption works end to end.
    sealed = AESGCM(dk["Plaintext"]).encrypt(b"\x00" * 12, b"payload", None)
    recovered = kms.decrypt(CiphertextBlob=dk["CiphertextBlob"], EncryptionContext={"obj": "1"})["Plaintext"]
    assert AESGCM(recovered).decrypt(b"\x00" * 12, sealed, None) == b"payload"

    assert len(kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_128")["Plaintext"]) == 16
    assert len(kms.generate_data_key(KeyId=key["Arn"], NumberOfBytes=64)["Plaintext"]) == 64
    bare = kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256")
    assert "Plaintext" not in bare
    assert len(kms.decrypt(CiphertextBlob=bare["CiphertextBlob"])["Plaintext"]) == 32
    for kwargs in ({}, {"KeySpec": "AES_256", "NumberOfBytes": 32}):
        with pytest.raises(ClientError) as exc:
            kms.generate_data_key(KeyId=key["KeyId"], **kwargs)
        assert _error(exc)[0] == "ValidationException"
    assert len(kms.generate_random(NumberOfBytes=48)["Plaintext"]) == 48


def test_rotation(kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    status = kms.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    assert status["NextRotationDate"] > kms.describe_key(KeyId=key_id)["KeyMetadata"]["CreationDate"]

    before = kms.encrypt(KeyId=key_id, Plaintext=b"old material")
    material = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=key_id)
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [r["RotationType"] for r in rotations] == ["ON_DEMAND"]
    after = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert after != material and rotations[0]["KeyMaterialId"] == after
    # Old ciphertexts still decrypt with the material they were made with; new ones use the new one.
    old = kms.decrypt(CiphertextBlob=before["CiphertextBlob"])
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"old material", material)
    fresh = kms.encrypt(KeyId=key_id, Plaintext=b"new")
    assert kms.decrypt(CiphertextBlob=fresh["CiphertextBlob"])["KeyMaterialId"] == after

    kms.disable_key_rotation(KeyId=key_id)
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


def test_disabled_and_pending_deletion_keys(kms: Any) -> None:
    meta = kms.create_key()["KeyMetadata"]
    key_id, arn = meta["KeyId"], meta["Arn"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"data")["CiphertextBlob"]

    kms.disable_key(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    for call in (lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"), lambda: kms.decrypt(CiphertextBlob=blob),
                 lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256"),
                 lambda: kms.enable_key_rotation(KeyId=key_id)):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == ("DisabledException", f"{arn} is disabled.")
    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"data"

    with pytest.raises(ClientError) as exc:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=5)
    assert _error(exc)[0] == "ValidationException"
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert (scheduled["KeyId"], scheduled["KeyState"], scheduled["PendingWindowInDays"]) == (arn, "PendingDeletion", 7)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and meta["Enabled"] is False
    assert meta["DeletionDate"] == scheduled["DeletionDate"] and meta["PendingDeletionWindowInDays"] == 7
    for call in (lambda: kms.encrypt(KeyId=key_id, Plaintext=b"x"), lambda: kms.decrypt(CiphertextBlob=blob),
                 lambda: kms.enable_key(KeyId=key_id), lambda: kms.schedule_key_deletion(KeyId=key_id)):
        with pytest.raises(ClientError) as exc:
            call()
        assert _error(exc) == ("KMSInvalidStateException", f"{arn} is pending deletion.")

    assert kms.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"  # as AWS leaves it
    with pytest.raises(ClientError) as exc:
        kms.cancel_key_deletion(KeyId=key_id)
    assert _error(exc)[0] == "KMSInvalidStateException"
    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"data"


# ----------------------------------------------------------------------------------------- policies
def test_key_policy_must_allow_even_administrators(server: StratumServer, kms: Any) -> None:
    """Without a grant to the account root, IAM policies (even AdministratorAccess) do not apply."""
    dev = server.account_id("dev")
    admin = f"arn:aws:iam::{dev}:user/admin"
    power_user, creds = _user(server, "dev", managed=ADMIN_ACCESS)
    key = kms.create_key(Policy=_policy(_allow(admin)))["KeyMetadata"]
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"only admin")["CiphertextBlob"]

    theirs = server.client("kms", "dev", **creds)
    for call, action in ((lambda: theirs.encrypt(KeyId=key["KeyId"], Plaintext=b"x"), "kms:Encrypt"),
                         (lambda: theirs.decrypt(CiphertextBlob=blob), "kms:Decrypt"),
                         (lambda: theirs.describe_key(KeyId=key["KeyId"]), "kms:DescribeKey")):
        with pytest.raises(ClientError) as exc:
            call()
        code, message = _error(exc)
        assert code == "AccessDeniedException"
        assert message == (f"User: {power_user} is not authorized to perform: {action} on resource: {key['Arn']} "
                           f"because no resource-based policy allows the {action} action")

    # Granting the account root delegates to IAM: now AdministratorAccess is enough.
    kms.put_key_policy(KeyId=key["KeyId"], PolicyName="default",
                       Policy=_policy(_allow(admin), _allow(f"arn:aws:iam::{dev}:root")))
    assert theirs.decrypt(CiphertextBlob=blob)["Plaintext"] == b"only admin"
    # ... and an explicit deny in the key policy beats every allow.
    kms.put_key_policy(KeyId=key["KeyId"], Policy=_policy(
        _allow(admin), _allow(f"arn:aws:iam::{dev}:root"),
        {"Effect": "Deny", "Principal": {"AWS": power_user}, "Action": "kms:Decrypt", "Resource": "*"}))
    with pytest.raises(ClientError) as exc:
        theirs.decrypt(CiphertextBlob=blob)
    assert "explicit deny in a resource-based policy" in _error(exc)[1]


def test_key_policy_checks(server: StratumServer, kms: Any) -> None:
    dev = server.account_id("dev")
    someone, _ = _user(server, "dev")
    # The lockout safety check: a policy that would stop the caller from ever changing it is refused...
    with pytest.raises(ClientError) as exc:
        kms.create_key(Policy=_policy(_allow(someone)))
    assert _error(exc) == ("MalformedPolicyDocumentException",
                           "The new key policy will not allow you to update the key policy in the future.")
    # ... unless the caller says it knows what it is doing.
    locked = kms.create_key(Policy=_policy(_allow(someone)), BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    with pytest.raises(ClientError) as exc:
        kms.get_key_policy(KeyId=locked["KeyId"])
    assert _error(exc)[0] == "AccessDeniedException"
    # Principals must exist.
    with pytest.raises(ClientError) as exc:
        kms.create_key(Policy=_policy(_allow(f"arn:aws:iam::{dev}:root"),
                                      _allow(f"arn:aws:iam::{dev}:user/{_uid('ghost')}")))
    assert _error(exc) == ("MalformedPolicyDocumentException",
                           "Policy contains a statement with one or more invalid principals.")


def test_encryption_context_and_caller_conditions(server: StratumServer, kms: Any) -> None:
    dev = server.account_id("dev")
    user, creds = _user(server, "dev")
    key = kms.create_key(Policy=_policy(
        _allow(f"arn:aws:iam::{dev}:root"),
        _allow(user, ["kms:Encrypt", "kms:Decrypt"], Condition={
            "StringEquals": {"kms:EncryptionContext:team": "ml", "kms:CallerAccount": dev},
            "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["team", "run"]}}),
    ))["KeyMetadata"]
    theirs = server.client("kms", "dev", **creds)
    blob = theirs.encrypt(KeyId=key["Arn"], Plaintext=b"ok", EncryptionContext={"team": "ml", "run": "7"})
    assert theirs.decrypt(CiphertextBlob=blob["CiphertextBlob"],
                          EncryptionContext={"team": "ml", "run": "7"})["Plaintext"] == b"ok"
    for context in ({"team": "data"}, {}, {"team": "ml", "extra": "x"}):
        with pytest.raises(ClientError) as exc:
            theirs.encrypt(KeyId=key["Arn"], Plaintext=b"no", EncryptionContext=context)
        assert _error(exc)[0] == "AccessDeniedException", context


def test_cross_account_key_use(server: StratumServer, kms: Any) -> None:
    dev, test = server.account_id("dev"), server.account_id("test")
    usage = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    shared = kms.create_key(Policy=_policy(_allow(f"arn:aws:iam::{dev}:root"),
                                           _allow(f"arn:aws:iam::{test}:root", usage)))["KeyMetadata"]
    private = kms.create_key()["KeyMetadata"]
    alias = f"alias/{_uid('shared')}"
    kms.create_alias(AliasName=alias, TargetKeyId=shared["KeyId"])

    # Key policy grants the test account and the caller's IAM policy allows: both sides agree.
    remote = server.client("kms", "test")
    blob = remote.encrypt(KeyId=shared["Arn"], Plaintext=b"across", EncryptionContext={"a": "b"})["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"across"
    assert remote.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"})["Plaintext"] == b"across"
    data_key = remote.generate_data_key(KeyId=shared["Arn"], KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32 and data_key["KeyId"] == shared["Arn"]
    assert remote.describe_key(KeyId=shared["Arn"])["KeyMetadata"]["AWSAccountId"] == dev
    mine = kms.encrypt(KeyId=shared["KeyId"], Plaintext=b"from dev")["CiphertextBlob"]
    assert remote.decrypt(CiphertextBlob=mine)["Plaintext"] == b"from dev"

    # The identity side must allow too: a test-account user without kms permissions is refused.
    _user_arn, creds = _user(server, "test", inline={"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                                     "Resource": "*"})
    with pytest.raises(ClientError) as exc:
        server.client("kms", "test", **creds).encrypt(KeyId=shared["Arn"], Plaintext=b"x")
    assert "because no identity-based policy allows the kms:Encrypt action" in _error(exc)[1]
    # ... and so must the key policy: the default policy trusts only the owner account.
    with pytest.raises(ClientError) as exc:
        remote.encrypt(KeyId=private["Arn"], Plaintext=b"x")
    assert "because no resource-based policy allows the kms:Encrypt action" in _error(exc)[1]
    # Aliases and bare key ids resolve in the caller's own account; management never crosses accounts.
    for ref in (alias, shared["KeyId"]):
        with pytest.raises(ClientError) as exc:
            remote.encrypt(KeyId=ref, Plaintext=b"x")
        assert _error(exc)[0] == "NotFoundException"
    with pytest.raises(ClientError) as exc:
        remote.disable_key(KeyId=shared["Arn"])
    assert _error(exc)[0] == "NotFoundException"


def test_aws_cli_kms(server: StratumServer, tmp_path: Path) -> None:
    created = json.loads(server.aws_cli("kms", "create-key", "--description", "from the cli").stdout)
    key_id = created["KeyMetadata"]["KeyId"]
    (tmp_path / "plain").write_bytes(b"hello from the cli")
    out = server.aws_cli("kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{tmp_path / 'plain'}",
                         "--encryption-context", "purpose=cli", "--output", "text", "--query", "CiphertextBlob")
    (tmp_path / "blob").write_bytes(base64.b64decode(out.stdout.strip()))
    plain = server.aws_cli("kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob'}",
                           "--encryption-context", "purpose=cli", "--output", "text", "--query", "Plaintext")
    assert base64.b64decode(plain.stdout.strip()) == b"hello from the cli"


def test_master_key_file_and_restart(fresh_server: StratumServer) -> None:
    kms = fresh_server.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"durable", EncryptionContext={"k": "v"})["CiphertextBlob"]
    master = fresh_server.data_dir / "master.key"
    assert master.stat().st_size == 32
    assert stat.S_IMODE(os.stat(master).st_mode) == 0o600
    before = master.read_bytes()
    fresh_server.restart()
    assert master.read_bytes() == before
    kms = fresh_server.client("kms")
    assert kms.decrypt(CiphertextBlob=blob, EncryptionContext={"k": "v"})["Plaintext"] == b"durable"
