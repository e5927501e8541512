"""Helpers for authorization tests: fast clients for many short-lived identities, and IAM users
with exactly the policy a test needs."""

from __future__ import annotations

import json
import uuid
from typing import Any

import botocore.session
from botocore.config import Config
from stratum_testing import REGION, StratumServer

# One botocore session for every client: it loads each service model once (a new boto3 session
# per client costs ~0.25 s for the SageMaker model alone).
_BOTO = botocore.session.get_session()
_CONFIG = Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"})


def client(server: StratumServer, service: str, creds: dict[str, str] | None = None, *, account: str = "dev",
           region: str = REGION, endpoint_url: str | None = None) -> Any:
    if creds is None:
        ak, sk = server.creds(account)
        creds = {"aws_access_key_id": ak, "aws_secret_access_key": sk}
    return _BOTO.create_client(service, region_name=region, endpoint_url=endpoint_url or server.endpoint_url,
                               config=_CONFIG, **creds)


def limited_user(server: StratumServer, *statements: dict[str, Any], account: str = "dev",
                 tags: list[dict[str, str]] | None = None, prefix: str = "authz") -> tuple[dict[str, str], str]:
    """Credentials and ARN of a new IAM user whose only (inline) policy holds ``statements``."""
    iam = client(server, "iam", account=account)
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    arn = iam.create_user(UserName=name, Tags=tags or [])["User"]["Arn"]
    iam.put_user_policy(UserName=name, PolicyName="only", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": list(statements)}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"aws_access_key_id": key["AccessKeyId"], "aws_secret_access_key": key["SecretAccessKey"]}, arn
