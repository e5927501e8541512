"""Fuzz every operation of every served service with malformed, oversized and hostile requests.

Each answer must come within the per-request timeout, must not be a 5xx (a 501 NotImplemented
for an operation Stratum does not implement is the one exception), and must be readable by
botocore's parser for the service's protocol: an error carries a code from its body (HEAD
answers have none). The run is bounded: STRATUM_FUZZ_CASES cases per operation (default 8, two of
each kind in fuzz_inputs.KINDS) and at most STRATUM_FUZZ_SECONDS of wall time per backend
(default 45); every operation gets its first case before any gets a second.

Reproduce a failure with the seed and operation it prints, e.g.
  STRATUM_FUZZ_SEED=0 STRATUM_FUZZ_OPS=s3:GetObject pytest tests/fuzz -k sqlite
STRATUM_FUZZ_SEED=random draws a fresh seed (printed) to explore beyond the default one.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import urllib3
from botocore.model import OperationModel
from botocore.parsers import create_parser

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))

from fuzz_inputs import Case, build_case  # noqa: E402
from stratum_testing import (  # noqa: E402
    BACKENDS,
    StratumServer,  # noqa: E402
    close_server,
    make_server,
)

from stratum.protocol.service_models import SERVED_SERVICES, known_by_signing_name, service_model  # noqa: E402

CASES = int(os.environ.get("STRATUM_FUZZ_CASES", "8"))
SECONDS = float(os.environ.get("STRATUM_FUZZ_SECONDS", "45"))
TIMEOUT = float(os.environ.get("STRATUM_FUZZ_TIMEOUT", "20"))
_SEED_SETTING = os.environ.get("STRATUM_FUZZ_SEED", "0")
SEED = str(random.SystemRandom().randrange(10**9)) if _SEED_SETTING == "random" else _SEED_SETTING
ONLY = [s.strip() for s in os.environ.get("STRATUM_FUZZ_OPS", "").split(",") if s.strip()]


def _operations() -> list[tuple[str, OperationModel]]:
    out: list[tuple[str, OperationModel]] = []
    for service in SERVED_SERVICES:
        model = service_model(service)
        for name in model.operation_names:
            if ONLY and service not in ONLY and f"{service}:{name}" not in ONLY:
                continue
            out.append((service, model.operation_model(name)))
    return out


@pytest.fixture(scope="module", params=BACKENDS)
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A server of its own: the fuzz calls every operation, the destructive ones included."""
    srv = make_server(tmp_path_factory, request.param)
    srv.start()
    yield srv
    close_server(srv)


def _resources(server: StratumServer) -> dict[str, list[str]]:
    """A few resources of each kind, and the member names that name them."""
    account = server.account_id("dev")
    s3, iam, sm = server.client("s3"), server.client("iam"), server.client("sagemaker")
    kms, events, ram = server.client("kms"), server.client("events"), server.client("ram")
    allow = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}]})
    s3.create_bucket(Bucket="fuzz-bucket")
    s3.put_object(Bucket="fuzz-bucket", Key="fuzz-key", Body=b"fuzz")
    iam.create_user(UserName="fuzz-user")
    role_arn = iam.create_role(RoleName="fuzz-role", AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    policy_arn = iam.create_policy(PolicyName="fuzz-policy", PolicyDocument=allow)["Policy"]["Arn"]
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    sm.create_model_package_group(ModelPackageGroupName="fuzz-group")
    definition = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": [
        {"Name": "c", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": 1, "RightValue": 1}], "IfSteps": [], "ElseSteps": []}}]})
    pipeline_arn = sm.create_pipeline(PipelineName="fuzz-pipeline", PipelineDefinition=definition,
                                      RoleArn=role_arn)["PipelineArn"]
    bus_arn = events.create_event_bus(Name="fuzz-bus")["EventBusArn"]
    share_arn = ram.create_resource_share(name="fuzz-share")["resourceShare"]["resourceShareArn"]
    return {
        "Bucket": ["fuzz-bucket"], "Key": ["fuzz-key"], "UserName": ["fuzz-user"], "RoleName": ["fuzz-role"],
        "RoleArn": [role_arn], "PolicyArn": [policy_arn, "arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "KeyId": [key_id], "ModelPackageGroupName": ["fuzz-group"], "PipelineName": ["fuzz-pipeline", pipeline_arn],
        "PipelineArn": [pipeline_arn], "EventBusName": ["fuzz-bus", bus_arn], "Name": ["fuzz-bus", "fuzz-pipeline"],
        "resourceShareArn": [share_arn], "resourceArn": [pipeline_arn, share_arn], "ResourceArn": [pipeline_arn],
        "AccountId": [account], "accountId": [account], "PolicyDocument": [allow], "Policy": [allow],
        "AssumeRolePolicyDocument": [trust], "PipelineDefinition": [definition],
    }


def _check(case: Case, op: OperationModel, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """What is wrong with the answer, or None."""
    protocol = op.service_model.resolved_protocol  # what botocore speaks (cloudwatch: json, not cbor)
    try:
        parsed = create_parser(protocol).parse({"status_code": status, "headers": headers, "body": body},
                                               op.output_shape)
    except Exception as exc:  # botocore's ResponseParserError and whatever a bad body raises
        return f"{status}: botocore cannot parse the answer ({type(exc).__name__}: {str(exc)[:200]})"
    code = str(parsed.get("Error", {}).get("Code", ""))
    # A HEAD answer has no body, so its 501's code cannot be read: the status is all there is.
    not_implemented = status == 501 and (code == "NotImplemented" or (case.method == "HEAD" and not body))
    if status >= 500 and not not_implemented:
        return f"{status} {code}: {body[:300]!r}"
    if status >= 300 and case.method != "HEAD" and (not code or code == str(status)):
        return f"{status}: no error code in the body: {body[:300]!r}"
    return None


class Unsendable(Exception):
    pass


def _send(pool: urllib3.PoolManager, case: Case) -> tuple[int, dict[str, str], bytes] | str:
    try:
        response = pool.request(case.method, case.url, body=case.body, headers=case.headers, retries=False,
                                redirect=False, timeout=urllib3.Timeout(connect=5, read=TIMEOUT))
    except urllib3.exceptions.ReadTimeoutError:
        return f"no answer within {TIMEOUT:g} s"
    except urllib3.exceptions.HTTPError as exc:
        return f"connection failed: {type(exc).__name__}: {str(exc)[:200]}"
    except (ValueError, UnicodeError) as exc:  # http.client will not write it (a non-ASCII URL)
        raise Unsendable(str(exc)) from None
    return response.status, {k.lower(): v for k, v in response.headers.items()}, response.data


@pytest.mark.slow
def test_no_operation_answers_hostile_input_with_a_5xx(fuzz_server: StratumServer) -> None:
    operations = _operations()
    creds = fuzz_server.creds("dev")
    known = _resources(fuzz_server)
    pool = urllib3.PoolManager(maxsize=4)
    deadline = time.monotonic() + SECONDS
    sent: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    skipped = 0
    started = time.monotonic()
    print(f"fuzz seed {SEED} on {fuzz_server.backend}")

    def run(service: str, op: OperationModel, number: int) -> None:
        nonlocal skipped
        case = build_case(fuzz_server.endpoint_url, creds, service, op, SEED, number, known)
        if case is None:
            skipped += 1
            return
        try:
            answer = _send(pool, case)
        except Unsendable:
            skipped += 1
            return
        sent[case.kind] += 1
        if isinstance(answer, str):
            problem: str | None = answer
        else:
            statuses[answer[0]] += 1
            problem = _check(case, op, *answer)
        if problem is not None:
            failures.append(f"{service}:{op.name} case {number} ({case.kind}; {'; '.join(case.notes)}): {problem}\n"
                            f"    reproduce: STRATUM_FUZZ_SEED={SEED} STRATUM_FUZZ_OPS={service}:{op.name} "
                            f"STRATUM_FUZZ_CASES={number + 1}")

    with ThreadPoolExecutor(max_workers=2) as executor:
        for number in range(CASES):
            if time.monotonic() > deadline:
                break
            list(executor.map(run, [s for s, _ in operations], [op for _, op in operations],
                              [number] * len(operations)))
    elapsed = time.monotonic() - started
    total = sum(sent.values())
    summary = (f"fuzz seed {SEED} on {fuzz_server.backend}: {len(operations)} operations x up to {CASES} cases, "
               f"{total} requests ({dict(sent)}) in {elapsed:.1f} s, {skipped} draws skipped (not serializable or sendable), "
               f"statuses {dict(sorted(statuses.items()))}")
    print(summary)
    assert total >= min(len(operations), 1), summary
    assert not failures, f"{summary}\n{len(failures)} bad answers:\n" + "\n".join(sorted(failures)[:60])


def test_the_generator_is_reproducible() -> None:
    """The same seed builds byte-identical requests (apart from the signature's clock)."""
    model = service_model("iam")
    op = model.operation_model("CreateRole")

    def build() -> Any:
        case = build_case("http://127.0.0.1:1", ("AKIDEXAMPLE", "secret"), "iam", op, "7", 1)
        assert case is not None
        return case.url, case.body, case.notes

    assert build() == build()


UNSERVED = int(os.environ.get("STRATUM_FUZZ_UNSERVED", "12"))


def _unserved_sample() -> list[str]:
    from stratum.protocol.service_models import known_services

    # Not the services that sign with a bearer token or SigV2 in the form (SimpleDB): nothing in
    # such a request names its service.
    names = sorted(k.name for k in known_services()
                   if k.name not in SERVED_SERVICES and k.metadata.get("signatureVersion") not in ("bearer", "v2"))
    return random.Random(f"{SEED}:unserved").sample(names, min(UNSERVED, len(names)))


def test_services_not_served_answer_their_clients(fuzz_server: StratumServer) -> None:
    """A sample of the services in botocore's data that Stratum does not serve, each called with
    its own boto3 client: a ClientError (501) saying the service is not served, nothing else."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from fuzz_inputs import Values

    ak, sk = fuzz_server.creds("dev")
    config = Config(retries={"max_attempts": 1}, parameter_validation=False, inject_host_prefix=False,
                    read_timeout=TIMEOUT, connect_timeout=5)
    problems: list[str] = []
    checked = 0
    for name in _unserved_sample():
        client = boto3.client(name, endpoint_url=fuzz_server.endpoint_url, region_name="us-east-1",
                              aws_access_key_id=ak, aws_secret_access_key=sk, config=config)
        model = client.meta.service_model
        rng = random.Random(f"{SEED}:{name}")
        signed = [op for op in model.operation_names
                  if model.operation_model(op).auth_type not in ("none", "smithy.api#noAuth")
                  and "none" not in (model.operation_model(op).auth or [])]
        if not signed:
            continue
        op = model.operation_model(rng.choice(sorted(signed)))
        params = Values(rng, hostile=False).structure(op.input_shape) if op.input_shape is not None else {}
        method = getattr(client, __import__("botocore").xform_name(op.name))
        try:
            method(**params)
        except ClientError as exc:
            checked += 1
            status = exc.response["ResponseMetadata"].get("HTTPStatusCode")
            # Services sharing a signing name (bedrock, bedrock-agent, bedrock-runtime) are told
            # apart by the request's protocol only: the message may name a sibling.
            siblings = {k.name for k in known_by_signing_name(model.signing_name or model.endpoint_prefix)} | {name}
            said = any(f"The service '{n}' is not served by Stratum" in str(exc) for n in siblings)
            if status != 501 or not (said or op.http["method"] == "HEAD"):  # a HEAD answer has no body
                problems.append(f"{name}:{op.name} ({model.resolved_protocol}): {status} {str(exc)[:200]}")
        except Exception as exc:  # ResponseParserError, a client-side refusal of the draw...
            if type(exc).__name__ in ("ParamValidationError", "UnknownParameterError", "NoAuthTokenError",
                                      "EndpointConnectionError", "EndpointResolutionError"):  # hosts from parameters
                continue
            problems.append(f"{name}:{op.name} ({model.resolved_protocol}): {type(exc).__name__}: {str(exc)[:200]}")
        else:
            problems.append(f"{name}:{op.name}: succeeded")
    print(f"unserved services, seed {SEED}: {checked} answered as not served")
    assert not problems, f"seed {SEED}:\n" + "\n".join(problems)
