"""Authorization throughput benchmark for ``stratum.policy.evaluate``.

Scenario: an IAM role session in account 111122223333 calls SageMaker with a realistic
request context; its role has an identity policy of 10 statements (all conditional, two of
them Deny guardrails) plus a permissions boundary, and the target carries a resource
policy. Each scenario is timed for ``--runs`` runs of ``-n`` evaluations on one core; the
median is reported. Policies are parsed once, as the server caches parsed policies.

A second part measures the latency authorization adds to a server request: the server's own
Authorizer (the caller's policies assembled from a real migrated database through its cache,
the request's condition keys, the decision) for an IAM user with the same 10-statement policy
calling DescribePipeline on a pipeline with a resource-tag condition, side by side with the
no-op a request that needs no permission costs (sts:GetCallerIdentity's skip_authorization).

Usage: python bench/authz.py [-n 50000] [--runs 3] [--server-n 20000]
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from stratum.policy import AuthzRequest, Caller, Policy, PolicySet, evaluate, parse_policy

ACCOUNT = "111122223333"
OTHER_ACCOUNT = "444455556666"
REGION = "us-east-1"
PIPELINE_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/churn-training"
TARGET = 50_000

IDENTITY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadPipelines",
            "Effect": "Allow",
            "Action": ["sagemaker:Describe*", "sagemaker:List*"],
            "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/*",
            "Condition": {"StringEquals": {"aws:PrincipalTag/team": "ml", "aws:RequestedRegion": REGION}},
        },
        {
            "Sid": "StartOwnPipelines",
            "Effect": "Allow",
            "Action": "sagemaker:StartPipelineExecution",
            "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/${{aws:PrincipalTag/team}}-*",
            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
        },
        {
            "Sid": "TrainingJobs",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateTrainingJob", "sagemaker:DescribeTrainingJob"],
            "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/*",
            "Condition": {"ForAllValues:StringLike": {"sagemaker:VpcSubnets": ["subnet-0a*", "subnet-0b*"]}},
        },
        {
            "Sid": "OfficeNetwork",
            "Effect": "Allow",
            "Action": "sagemaker:*",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"]}},
        },
        {
            "Sid": "BusinessHours",
            "Effect": "Allow",
            "Action": "sagemaker:Describe*",
            "Resource": "*",
            "Condition": {
                "DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"},
                "DateLessThan": {"aws:CurrentTime": "2099-01-01T00:00:00Z"},
            },
        },
        {
            "Sid": "TaggedModels",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateModel", "sagemaker:AddTags"],
            "Resource": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["project", "owner"]}},
        },
        {
            "Sid": "ArtifactBucket",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": "arn:aws:s3:::ml-artifacts/${aws:PrincipalTag/team}/*",
            "Condition": {"StringLikeIfExists": {"s3:prefix": "${aws:PrincipalTag/team}/*"}},
        },
        {
            "Sid": "PassExecutionRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-*",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        {
            "Sid": "DenyWithoutMfaForDeletes",
            "Effect": "Deny",
            "Action": "sagemaker:Delete*",
            "Resource": "*",
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}},
        },
        {
            "Sid": "DenyOutsideRegion",
            "Effect": "Deny",
            "NotAction": ["iam:*", "sts:*"],
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:RequestedRegion": [REGION, "us-west-2"]}},
        },
    ],
}

BOUNDARY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["sagemaker:*", "s3:*", "iam:PassRole"], "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": "iam:*",
            "NotResource": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-*",
        },
    ],
}

RESOURCE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "CrossAccountRead",
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{OTHER_ACCOUNT}:root"]},
            "Action": ["sagemaker:DescribePipeline", "sagemaker:ListPipelineExecutions"],
            "Resource": PIPELINE_ARN,
        },
        {
            "Sid": "DenyInsecure",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "sagemaker:*",
            "Resource": PIPELINE_ARN,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ],
}


def _context() -> dict[str, object]:
    return {
        "aws:SourceIp": "10.1.2.3",
        "aws:SecureTransport": True,
        "aws:CurrentTime": datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        "aws:RequestedRegion": REGION,
        "aws:PrincipalTag/team": "ml",
        "aws:MultiFactorAuthPresent": False,
        "aws:userid": "AROAEXAMPLE:alice",
        "sagemaker:VpcSubnets": ["subnet-0a1", "subnet-0b2"],
    }


def _session() -> Caller:
    return Caller(
        arn=f"arn:aws:sts::{ACCOUNT}:assumed-role/DataScientist/alice",
        account=ACCOUNT,
        kind="assumed-role",
        role_arn=f"arn:aws:iam::{ACCOUNT}:role/team/DataScientist",
    )


def _scenarios() -> dict[str, tuple[AuthzRequest, PolicySet, bool]]:
    identity = parse_policy(IDENTITY_POLICY, name="DataScientistAccess")
    boundary = parse_policy(BOUNDARY_POLICY, kind="boundary", name="Boundary")
    resource: Policy = parse_policy(RESOURCE_POLICY, kind="resource", name="PipelinePolicy")
    policies = PolicySet(identity=[identity], boundary=boundary, resource=resource)
    describe = AuthzRequest(_session(), "sagemaker:DescribePipeline", PIPELINE_ARN, None, _context())
    delete = AuthzRequest(_session(), "sagemaker:DeletePipeline", PIPELINE_ARN, None, _context())
    cross = AuthzRequest(
        Caller.from_arn(f"arn:aws:iam::{OTHER_ACCOUNT}:user/bob"),
        "sagemaker:DescribePipeline",
        PIPELINE_ARN,
        ACCOUNT,
        _context(),
    )
    cross_policies = PolicySet(identity=[identity], resource=resource)
    # Expired time window and no tags: every candidate statement is evaluated, none allows.
    late = {**_context(), "aws:CurrentTime": datetime(2100, 1, 1, tzinfo=UTC), "aws:SourceIp": "203.0.113.9"}
    del late["aws:PrincipalTag/team"]
    scan = AuthzRequest(_session(), "sagemaker:DescribeTrainingJob", PIPELINE_ARN, None, late)
    return {
        "same-account allow (identity+boundary+resource)": (describe, policies, True),
        "explicit deny (Delete without MFA)": (delete, policies, False),
        "cross-account allow (both sides)": (cross, cross_policies, True),
        "implicit deny (all candidate statements scanned)": (scan, policies, False),
    }


def _time(request: AuthzRequest, policies: PolicySet, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        evaluate(request, policies)
    return n / (time.perf_counter() - start)


def _server_authorization(n: int, runs: int) -> None:
    """Median microseconds that ctx.authorize adds to one request inside a real AppState."""
    import json
    import tempfile
    from pathlib import Path

    from stratum.bootstrap import bootstrap
    from stratum.config import Settings
    from stratum.protocol.http import HttpRequest
    from stratum.server.app_state import AppState
    from stratum.server.context import RequestContext
    from stratum.services.iam import store as iam
    from stratum.services.organizations.accounts import list_accounts
    from stratum.store.db import Database

    data_dir = Path(tempfile.mkdtemp(prefix="stratum-authz-"))
    settings = Settings(data_dir=data_dir)
    db = Database(settings.db_url)
    db.migrate()
    bootstrap(db, settings)
    with db.begin() as conn:
        account = list_accounts(conn)[0]["id"]
        iam.create_user(conn, account, "bench", tags=[{"Key": "team", "Value": "ml"}])
        doc = json.dumps(IDENTITY_POLICY).replace(ACCOUNT, account)
        from sqlalchemy import insert

        from stratum.services.iam.tables import iam_inline_policies
        conn.execute(insert(iam_inline_policies).values(account_id=account, principal_type="user",
                                                        principal_name="bench", policy_name="p", document=doc))
        user = iam.get_user(conn, account, "bench")
    app = AppState(settings, db)
    from stratum.auth.identity import Identity

    identity = Identity(account_id=account, arn=user["arn"], kind="user", principal_id=user["user_id"],
                        user_name="bench", tags={"team": "ml"})
    http = HttpRequest(method="POST", raw_path="/", query_string="", headers={"host": "127.0.0.1"},
                       client_ip="10.1.2.3")
    arn = f"arn:aws:sagemaker:{REGION}:{account}:pipeline/churn-training"

    def one(authorize: bool) -> None:
        ctx = RequestContext(app, "rid", "sagemaker", "DescribePipeline", REGION, identity, http)
        if authorize:
            ctx.authorize("sagemaker:DescribePipeline", arn, resource_account=account,
                          context={"aws:ResourceTag/team": "ml"})
        else:
            ctx.skip_authorization("baseline")

    one(True)  # warm the policy cache, as every request after the first sees it
    results = {}
    for label, flag in (("with authorization", True), ("no permission needed", False)):
        samples = []
        for _ in range(runs):
            app.settings.credential_cache_seconds = 3600.0  # measure the steady state, not refills
            start = time.perf_counter()
            for _ in range(n):
                one(flag)
            samples.append((time.perf_counter() - start) / n * 1e6)
        results[label] = statistics.median(samples)
    added = results["with authorization"] - results["no permission needed"]
    print(f"\nserver authorization per request ({runs} runs x {n:,}, median; SQLite store, warm cache):")
    for label, us in results.items():
        print(f"  {label:<24} {us:7.1f} us/request")
    print(f"  added by authorization   {added:7.1f} us/request")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50_000, help="evaluations per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server-n", type=int, default=20_000, help="requests per run for the server part")
    args = parser.parse_args()

    print(f"stratum.policy.evaluate: {args.runs} runs x {args.n:,} evaluations, single thread, median")
    for label, (request, policies, expected) in _scenarios().items():
        decision = evaluate(request, policies)
        assert decision.allowed is expected, (label, decision)
        evaluate(request, policies)  # warm per-policy action caches and regex caches
        rates = [_time(request, policies, args.n) for _ in range(args.runs)]
        median = statistics.median(rates)
        verdict = "OK" if median >= TARGET else "BELOW TARGET"
        runs = ", ".join(f"{r:,.0f}" for r in rates)
        print(
            f"  {label:<50} {median:>10,.0f} evals/s  ({1e6 / median:5.1f} us/eval; runs: {runs}) {verdict}"
        )
    _server_authorization(args.server_n, args.runs)


if __name__ == "__main__":
    main()
