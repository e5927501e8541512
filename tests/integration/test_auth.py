"""SigV4 authentication against a running server, with the real clients."""

from __future__ import annotations

import datetime
import json
import time
import urllib.request
import uuid
from unittest import mock

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from sqlalchemy import update

from stratum.services.iam.tables import sts_sessions
from stratum.store.db import Database


def _raw_client(server, service: str, **kw):  # type: ignore[no-untyped-def]
    return boto3.client(service, endpoint_url=server.endpoint_url, region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1}), **kw)


def test_wrong_secret_is_refused_per_protocol(server) -> None:
    ak, _ = server.creds("dev")
    wrong = {"aws_access_key_id": ak, "aws_secret_access_key": "x" * 40}
    with pytest.raises(ClientError) as sm:
        _raw_client(server, "sagemaker", **wrong).list_pipelines()
    assert sm.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert "signature we calculated does not match" in sm.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as sts:
        _raw_client(server, "sts", **wrong).get_caller_identity()
    assert sts.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert sts.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_access_key(server) -> None:
    creds = {"aws_access_key_id": "AKIA" + "Z" * 16, "aws_secret_access_key": "x" * 40}
    with pytest.raises(ClientError) as sts:
        _raw_client(server, "sts", **creds).get_caller_identity()
    assert sts.value.response["Error"]["Code"] == "InvalidClientTokenId"
    with pytest.raises(ClientError) as sm:
        _raw_client(server, "sagemaker", **creds).list_pipelines()
    assert sm.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_missing_authentication(server) -> None:
    req = urllib.request.Request(f"{server.endpoint_url}/", data=b"Action=GetCallerIdentity&Version=2011-06-15",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 403
    assert b"<Code>MissingAuthenticationToken</Code>" in err.value.read()
    req = urllib.request.Request(f"{server.endpoint_url}/", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "SageMaker.ListPipelines"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert b"MissingAuthenticationTokenException" in err.value.read()


def test_clock_skew_beyond_fifteen_minutes(server) -> None:
    ak, sk = server.creds("dev")
    skewed = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    client = _raw_client(server, "sts", aws_access_key_id=ak, aws_secret_access_key=sk)
    with mock.patch("botocore.auth.get_current_datetime", return_value=skewed):
        with pytest.raises(ClientError) as err:
            client.get_caller_identity()
    assert err.value.response["Error"]["Code"] == "RequestExpired"
    # 14 minutes is still within the window
    near = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=14)
    with mock.patch("botocore.auth.get_current_datetime", return_value=near):
        assert client.get_caller_identity()["Account"] == server.account_id("dev")


def test_session_token_must_match_and_expire(server) -> None:
    iam = server.client("iam", "dev")
    role = f"tok-{uuid.uuid4().hex[:8]}"
    account = server.account_id("dev")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]}))
    creds = server.client("sts", "dev").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/{role}", RoleSessionName="sess", DurationSeconds=900)["Credentials"]
    good = {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"]}
    with pytest.raises(ClientError) as err:
        _raw_client(server, "sts", aws_session_token="bogus", **good).get_caller_identity()
    assert err.value.response["Error"]["Code"] == "InvalidClientTokenId"
    sts = _raw_client(server, "sts", aws_session_token=creds["SessionToken"], **good)
    assert sts.get_caller_identity()["Arn"].endswith(f":assumed-role/{role}/sess")
    # Age the session in the store: the server must refuse it once its cache lapses.
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    with db.begin() as conn:
        conn.execute(update(sts_sessions).where(sts_sessions.c.access_key_id == creds["AccessKeyId"])
                     .values(expiration=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)))
    db.dispose()
    time.sleep(2.2)
    with pytest.raises(ClientError) as err:
        sts.get_caller_identity()
    assert err.value.response["Error"]["Code"] == "ExpiredToken"
    with pytest.raises(ClientError) as err:
        _raw_client(server, "sagemaker", aws_session_token=creds["SessionToken"], **good).list_pipelines()
    assert err.value.response["Error"]["Code"] == "ExpiredTokenException"
