"""One request must not stall everyone: AWS's input quotas with AWS's errors, and the largest inputs
answered without holding up another account's requests (boto3 against a real server)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import psutil
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
FAIL_DEFINITION = json.dumps({"Version": "2020-12-01", "Steps": [
    {"Name": "F", "Type": "Fail", "Arguments": {"ErrorMessage": "x"}}]})


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = exc.value.response
    return response["Error"]["Code"], response["Error"]["Message"], response["ResponseMetadata"]["HTTPStatusCode"]


def policy_of_size(size: int, *, spaces: int = 0) -> str:
    """A valid identity policy of exactly ``size`` non-whitespace characters, plus ``spaces`` blanks."""
    head = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/'
    tail = '"}]}'
    doc = head + "x" * (size - len(head) - len(tail)) + tail
    return doc.replace(",", "," + " " * spaces, 1) if spaces else doc


def trust_of_size(size: int) -> str:
    head = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole","Sid":"'
    tail = '"}]}'
    return head + "s" * (size - len(head) - len(tail)) + tail


def tags(n: int, prefix: str = "k") -> list[dict[str, str]]:
    return [{"Key": f"{prefix}{i}", "Value": "v"} for i in range(n)]


# ------------------------------------------------------------------------------------------ tags
def test_tag_user_beyond_fifty_tags_is_limit_exceeded(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    user = _uid("tags")
    iam.create_user(UserName=user, Tags=tags(45))
    with pytest.raises(ClientError) as exc:
        iam.tag_user(UserName=user, Tags=tags(6, "more"))
    assert _error(exc) == ("LimitExceeded", "The number of tags has reached the maximum limit.", 409)
    assert len(iam.get_user(UserName=user)["User"]["Tags"]) == 45
    # Replacing existing keys does not add tags; 50 in all is allowed.
    iam.tag_user(UserName=user, Tags=tags(5, "more") + tags(45)[:10])
    assert len(iam.get_user(UserName=user)["User"]["Tags"]) == 50


def test_tag_role_beyond_fifty_tags_is_limit_exceeded(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    role = _uid("tags")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST, Tags=tags(50))
    with pytest.raises(ClientError) as exc:
        iam.tag_role(RoleName=role, Tags=tags(1, "extra"))
    assert _error(exc)[0] == "LimitExceeded"


def test_more_than_fifty_tags_in_one_request_is_a_validation_error(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    with pytest.raises(ClientError) as exc:
        iam.create_user(UserName=_uid("tags"), Tags=tags(51))
    code, message, status = _error(exc)
    assert (code, status) == ("ValidationError", 400)
    assert "Member must have length less than or equal to 50" in message


def test_sagemaker_resources_keep_at_most_fifty_tags(server: StratumServer) -> None:
    iam, sm = server.client("iam", "dev"), server.client("sagemaker", "dev")
    role = iam.create_role(RoleName=_uid("sm"), AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=_uid("p"), PipelineDefinition=FAIL_DEFINITION, RoleArn=role, Tags=tags(51))
    assert _error(exc)[0] == "ValidationException"
    arn = sm.create_pipeline(PipelineName=_uid("p"), PipelineDefinition=FAIL_DEFINITION, RoleArn=role,
                             Tags=tags(40))["PipelineArn"]
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=arn, Tags=tags(11, "more"))
    assert _error(exc)[0] == "ValidationException"
    assert len(sm.list_tags(ResourceArn=arn)["Tags"]) == 40


# -------------------------------------------------------------------------------------- policies
def test_managed_policy_is_at_most_6144_characters_without_whitespace(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    # Whitespace does not count: 6,144 characters plus 3,000 blanks is within the quota.
    arn = iam.create_policy(PolicyName=_uid("max"), PolicyDocument=policy_of_size(6144, spaces=3000))["Policy"]["Arn"]
    with pytest.raises(ClientError) as exc:
        iam.create_policy(PolicyName=_uid("over"), PolicyDocument=policy_of_size(6145))
    assert _error(exc) == ("LimitExceeded", "Cannot exceed quota for PolicySize: 6144", 409)
    with pytest.raises(ClientError) as exc:
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=policy_of_size(6145))
    assert _error(exc)[0] == "LimitExceeded"
    assert len(iam.list_policy_versions(PolicyArn=arn)["Versions"]) == 1
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=policy_of_size(6144))


def test_inline_policies_of_a_user_total_at_most_2048_characters(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    user = _uid("inline")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="one", PolicyDocument=policy_of_size(1200, spaces=500))
    # Replacing a policy counts its new size only, not old + new.
    iam.put_user_policy(UserName=user, PolicyName="one", PolicyDocument=policy_of_size(1300))
    with pytest.raises(ClientError) as exc:
        iam.put_user_policy(UserName=user, PolicyName="two", PolicyDocument=policy_of_size(800))
    assert _error(exc) == ("LimitExceeded", f"Maximum policy size of 2048 bytes exceeded for user {user}", 409)
    assert iam.list_user_policies(UserName=user)["PolicyNames"] == ["one"]
    iam.put_user_policy(UserName=user, PolicyName="two", PolicyDocument=policy_of_size(748))
    with pytest.raises(ClientError) as exc:
        iam.put_user_policy(UserName=_uid("nobody"), PolicyName="big", PolicyDocument=policy_of_size(2049))
    assert _error(exc)[0] == "LimitExceeded"


def test_inline_policies_of_a_role_total_at_most_10240_characters(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    role = _uid("inline")
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName=role, PolicyName="a", PolicyDocument=policy_of_size(6000))
    iam.put_role_policy(RoleName=role, PolicyName="b", PolicyDocument=policy_of_size(4240))
    with pytest.raises(ClientError) as exc:
        iam.put_role_policy(RoleName=role, PolicyName="c", PolicyDocument=policy_of_size(200))
    assert _error(exc) == ("LimitExceeded", f"Maximum policy size of 10240 bytes exceeded for role {role}", 409)
    # A document at the model's maximum (131,072 characters) is refused by its size, unparsed.
    with pytest.raises(ClientError) as exc:
        iam.put_role_policy(RoleName=role, PolicyName="huge", PolicyDocument=policy_of_size(131_072))
    assert _error(exc)[0] == "LimitExceeded"


def test_trust_policy_is_at_most_2048_characters(server: StratumServer) -> None:
    iam = server.client("iam", "dev")
    role = _uid("trust")
    with pytest.raises(ClientError) as exc:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_of_size(2049))
    assert _error(exc) == ("LimitExceeded", "Cannot exceed quota for ACLSizePerRole: 2048", 409)
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust_of_size(2048))
    with pytest.raises(ClientError) as exc:
        iam.update_assume_role_policy(RoleName=role, PolicyDocument=trust_of_size(2049))
    assert _error(exc)[0] == "LimitExceeded"


# ------------------------------------------------------------------------------------ no stalls
def _slow_client(server: StratumServer, service: str, account: str, **creds: Any) -> Any:
    if not creds:
        ak, sk = server.creds(account)
        creds = {"aws_access_key_id": ak, "aws_secret_access_key": sk}
    return server.session(account, **creds).client(
        service, endpoint_url=server.endpoint_url, region_name=REGION,
        config=Config(retries={"max_attempts": 1}, read_timeout=300, s3={"addressing_style": "path"}))


def test_eight_thousand_tags_do_not_hold_up_another_accounts_requests(server: StratumServer) -> None:
    """The 8,000-tag TagUser (403 KB) took 13 s of the event loop: nothing else was answered
    meanwhile. Now it is refused with the model's limit, and another account's DescribePipeline
    calls keep being answered while it is worked on."""
    iam = _slow_client(server, "iam", "dev")
    user = _uid("flood")
    iam.create_user(UserName=user)
    other_iam, other_sm = server.client("iam", "test"), server.client("sagemaker", "test")
    role = other_iam.create_role(RoleName=_uid("r"), AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]
    pipeline = _uid("victim")
    other_sm.create_pipeline(PipelineName=pipeline, PipelineDefinition=FAIL_DEFINITION, RoleArn=role)
    flood = [{"Key": f"key-{i:06d}", "Value": "v" * 30} for i in range(8000)]
    window: dict[str, float] = {}
    outcome: list[tuple[str, int]] = []

    def tag() -> None:
        try:
            iam.tag_user(UserName=user, Tags=flood)
        except ClientError as exc:
            outcome.append((exc.response["Error"]["Code"], exc.response["ResponseMetadata"]["HTTPStatusCode"]))

    # The window the server has the request: from its sending (boto3 takes a while to serialize
    # and sign 8,000 tags) to its answer (before boto3 parses the large error body).
    def sent(**_: Any) -> None:
        window["start"] = time.monotonic()

    def answered_by_server(**_: Any) -> None:
        window["end"] = time.monotonic()

    iam.meta.events.register("before-send.iam.TagUser", sent)
    iam.meta.events.register("before-parse.iam.TagUser", answered_by_server)
    answered: list[float] = []
    worker = threading.Thread(target=tag)
    worker.start()
    while worker.is_alive():
        other_sm.describe_pipeline(PipelineName=pipeline)
        answered.append(time.monotonic())
    worker.join()
    assert outcome == [("ValidationError", 400)]
    assert "Tags" not in iam.get_user(UserName=user)["User"]
    # Requests answered while the big one was in the server (the first 50 ms excluded: the body is
    # still being received then). Before, the event loop parsed it: none could be answered.
    during = [t for t in answered if window["start"] + 0.05 < t < window["end"]]
    assert len(during) >= 3, (f"{len(during)} DescribePipeline answered during a "
                              f"{window['end'] - window['start']:.2f} s TagUser")


def test_wildcard_heavy_policy_against_the_longest_key_is_answered_at_once(server: StratumServer) -> None:
    """Five stars against a 140-character key took 18 s (regular-expression backtracking);
    against S3's longest key (1,024 bytes) it would not have finished."""
    iam, s3 = server.client("iam", "dev"), server.client("s3", "dev")
    bucket = _uid("wild")
    s3.create_bucket(Bucket=bucket)
    user = _uid("wild")
    iam.create_user(UserName=user)
    patterns = [f"arn:aws:s3:::{bucket}/*a*a*a*a*a*{i}b" for i in range(20)]
    iam.put_user_policy(UserName=user, PolicyName="wild", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:PutObject", "Resource": patterns},
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": ["*a*a*a*a*a*b", "x*"]}}}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    user_s3 = _slow_client(server, "s3", "dev", aws_access_key_id=key["AccessKeyId"],
                           aws_secret_access_key=key["SecretAccessKey"])
    started = time.monotonic()
    with pytest.raises(ClientError) as exc:
        user_s3.put_object(Bucket=bucket, Key="a" * 1024, Body=b"")
    assert _error(exc)[0] == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        user_s3.list_objects_v2(Bucket=bucket, Prefix="a" * 1024)
    assert _error(exc)[0] == "AccessDenied"
    # What the patterns match is still allowed.
    user_s3.put_object(Bucket=bucket, Key="x" + "a" * 1000 + "7b", Body=b"")
    assert user_s3.list_objects_v2(Bucket=bucket, Prefix="x" + "a" * 1000)["KeyCount"] == 1
    assert time.monotonic() - started < 30


def _parser_processes(server: StratumServer) -> list[psutil.Process]:
    """The server's request parser process (a spawned multiprocessing child)."""
    assert server.proc is not None
    children = psutil.Process(server.proc.pid).children(recursive=True)
    return [c for c in children if "multiprocessing" in " ".join(c.cmdline())]


def test_large_bodies_are_parsed_in_a_process_that_is_replaced_when_it_dies(fresh_server: StratumServer) -> None:
    sm = fresh_server.client("sagemaker")
    iam = fresh_server.client("iam")
    role = f"arn:aws:iam::{fresh_server.account_id('dev')}:role/parsed-elsewhere"
    name = _uid("big")
    padding = "x" * 200_000  # a large body: parsed and checked by the parser process
    big = json.loads(FAIL_DEFINITION)
    big["Steps"][0]["Description"] = padding
    sm.create_pipeline(PipelineName=name, RoleArn=role, PipelineDefinition=json.dumps(big))
    assert json.loads(sm.describe_pipeline(PipelineName=name)["PipelineDefinition"])["Steps"][0]["Description"] \
        == padding
    deadline = time.monotonic() + 30
    while not (parsers := _parser_processes(fresh_server)):
        assert time.monotonic() < deadline, "no parser process"
        time.sleep(0.1)

    def errors_are_the_same() -> None:
        # The definition's own check (a step depending on itself) and the model's validation
        # answer as they do for small bodies.
        cyclic = {"Version": "2020-12-01", "Steps": [
            {"Name": "F", "Type": "Fail", "DependsOn": ["F"], "Arguments": {"ErrorMessage": padding}}]}
        with pytest.raises(ClientError) as exc:
            sm.update_pipeline(PipelineName=name, PipelineDefinition=json.dumps(cyclic))
        assert _error(exc)[0] == "ValidationException"
        with pytest.raises(ClientError) as exc:
            iam.tag_user(UserName="nobody", Tags=tags(8000))
        code, message, status = _error(exc)
        assert (code, status) == ("ValidationError", 400) and "length less than or equal to 50" in message
        sm.update_pipeline(PipelineName=name, PipelineDefinition=json.dumps(big))

    errors_are_the_same()
    # A document's own check comes after authorization, as when it is checked in the server.
    malformed = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", ' \
        '"Resource": "arn:aws:s3:::b/*", "Condition": {"Bogus": {"a": "' + "y" * 5000 + '"}}}]}'
    iam.create_role(RoleName="parsed-elsewhere", AssumeRolePolicyDocument=TRUST)
    iam.create_user(UserName="nobody-much")
    key = iam.create_access_key(UserName="nobody-much")["AccessKey"]
    powerless = fresh_server.client("iam", aws_access_key_id=key["AccessKeyId"],
                                    aws_secret_access_key=key["SecretAccessKey"])
    with pytest.raises(ClientError) as exc:
        powerless.put_role_policy(RoleName="parsed-elsewhere", PolicyName="p", PolicyDocument=malformed)
    assert _error(exc)[0] == "AccessDenied"
    with pytest.raises(ClientError) as exc:
        iam.put_role_policy(RoleName="parsed-elsewhere", PolicyName="p", PolicyDocument=malformed)
    assert _error(exc)[0] == "MalformedPolicyDocument"
    for parser in parsers:
        parser.kill()  # kill -9: the next large request is still answered, and a new process takes over
    errors_are_the_same()
    deadline = time.monotonic() + 30
    while not (again := _parser_processes(fresh_server)) or {p.pid for p in again} & {p.pid for p in parsers}:
        assert time.monotonic() < deadline, "the parser process was not replaced"
        errors_are_the_same()
        time.sleep(0.2)
    errors_are_the_same()
