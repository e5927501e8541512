"""A restart — clean or a crash — keeps every account, key, pipeline, execution and object."""

from __future__ import annotations

import json

import pytest
from stratum_testing import StratumServer

DEFINITION = json.dumps({
    "Version": "2020-12-01",
    "Parameters": [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5}],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "stop"}}],
})


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_everything_survives_a_restart(fresh_server: StratumServer, how: str) -> None:
    srv = fresh_server
    account = srv.account_id("dev")
    iam = srv.client("iam")
    iam.create_user(UserName="alice")
    key = iam.create_access_key(UserName="alice")["AccessKey"]
    iam.put_user_policy(UserName="alice", PolicyName="read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:Describe*",
                                                 "Resource": "*"}]}))
    iam.create_role(RoleName="deployer", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": account},
                                                 "Action": "sts:AssumeRole"}]}))
    s3 = srv.client("s3")
    s3.create_bucket(Bucket="durable-bucket")
    s3.put_object(Bucket="durable-bucket", Key="data/train.csv", Body=b"1,2,3\n")
    sm = srv.client("sagemaker")
    role_arn = f"arn:aws:iam::{account}:role/deployer"
    sm.create_pipeline(PipelineName="durable", PipelineDefinition=DEFINITION, RoleArn=role_arn)
    execution = sm.start_pipeline_execution(PipelineName="durable", PipelineParameters=[
        {"Name": "Threshold", "Value": "0.7"}])["PipelineExecutionArn"]
    accounts_before = {n: srv.account_id(n) for n in ("dev", "test", "prod", "shared-services", "hub")}

    if how == "kill":
        srv.kill()
        srv.start()
    else:
        srv.restart()

    assert {n: srv.account_id(n) for n in accounts_before} == accounts_before
    alice_sm = srv.client("sagemaker", aws_access_key_id=key["AccessKeyId"],
                          aws_secret_access_key=key["SecretAccessKey"])
    described = alice_sm.describe_pipeline(PipelineName="durable")
    assert json.loads(described["PipelineDefinition"]) == json.loads(DEFINITION)
    assert described["RoleArn"] == role_arn
    desc = alice_sm.describe_pipeline_execution(PipelineExecutionArn=execution)
    assert desc["PipelineExecutionArn"] == execution
    params = srv.client("sagemaker").list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)
    assert params["PipelineParameters"] == [{"Name": "Threshold", "Value": "0.7"}]
    assert srv.client("s3").get_object(Bucket="durable-bucket", Key="data/train.csv")["Body"].read() == b"1,2,3\n"
    assert srv.client("iam").get_role(RoleName="deployer")["Role"]["Arn"] == role_arn
    assert srv.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="after")["AssumedRoleUser"]
