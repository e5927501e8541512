"""Calls for the isolation sweeps, generated from the botocore service models.

Every operation a provider serves is called with its required members filled from the model:
members that name a resource take one account's fixture resources (:class:`Resources`), the others
minimal valid values (or, for the few operations whose inputs must hang together, a complete
request written out in ``_COMPLETE``). The sweeps in tests/integration/test_isolation.py then swap
one resource for another account's and look at the answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import urllib3
from authz_testing import client
from botocore.model import OperationModel, Shape
from stratum_testing import REGION, StratumServer

from stratum.bootstrap import DEFAULT_ACCOUNTS
from stratum.services.registry import PROVIDERS

SERVICES = ("sts", "iam", "s3", "kms", "sagemaker", "ram", "events", "organizations", "cloudwatch", "logs")
_BOTO = botocore.session.get_session()
UNKNOWN_IMAGE = "registry.example.com/isolation/none:1"  # jobs with it fail at once, and stay describable
# One namespace in every account: metrics are per account, so the same namespace and metric name in
# another account is another metric (the fixture metrics' names differ by their account's tag).
METRIC_NAMESPACE = "Stratum/Isolation"
OWNER_DATAPOINTS = (1.0, 2.0, 3.0)  # the fixture metric's samples, in one minute
COMMON_LOG_GROUP = "/isolation/common"


def served_operations() -> dict[str, list[str]]:
    """The operations each served service implements (the others answer 501 NotImplemented)."""
    out: dict[str, list[str]] = {}
    for service in SERVICES:
        model = _BOTO.get_service_model(service)
        target = PROVIDERS.get(service)
        if target is None:
            out[service] = []
            continue
        module_name, _, class_name = target.partition(":")
        provider = getattr(importlib.import_module(module_name), class_name).__new__(
            getattr(importlib.import_module(module_name), class_name))
        out[service] = [op for op in model.operation_names if provider.handler(op) is not None]
    return out


def operation_model(service: str, operation: str) -> OperationModel:
    return _BOTO.get_service_model(service).operation_model(operation)


def operation_without_input(service: str) -> str:
    """An operation of ``service`` that needs no input (DescribeOrganization, ListBuckets...)."""
    model = _BOTO.get_service_model(service)
    return next(op for op in model.operation_names
                if model.operation_model(op).input_shape is None
                or not model.operation_model(op).input_shape.required_members)


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def fresh(prefix: str = "iso-new") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------------------------ resources
@dataclass
class Resources:
    """One account's fixture resources, created by its administrator."""

    server: StratumServer
    account: str
    tag: str  # in every name, so an answer that leaks one of them is found by a substring search
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def account_id(self) -> str:
        return self.server.account_id(self.account)

    def client(self, service: str, creds: dict[str, str] | None = None) -> Any:
        return client(self.server, service, creds, account=self.account)


def create_resources(server: StratumServer, account: str) -> Resources:
    """One resource of every kind the served operations name, in ``account``."""
    tag = f"iso{uuid.uuid4().hex[:8]}"
    r = Resources(server, account, tag)
    ids = r.ids
    aid = r.account_id
    iam, s3, kms, sm, ram, events = (r.client(s) for s in ("iam", "s3", "kms", "sagemaker", "ram", "events"))

    ids["user"] = f"{tag}-user"
    ids["user_arn"] = iam.create_user(UserName=ids["user"])["User"]["Arn"]
    ids["inline"] = f"{tag}-inline"
    allow_s3 = policy({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})
    iam.put_user_policy(UserName=ids["user"], PolicyName=ids["inline"], PolicyDocument=allow_s3)
    ids["access_key"] = iam.create_access_key(UserName=ids["user"])["AccessKey"]["AccessKeyId"]
    ids["role"] = f"{tag}-role"
    ids["role_arn"] = iam.create_role(RoleName=ids["role"], AssumeRolePolicyDocument=policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{aid}:root"}, "Action": "sts:AssumeRole"},
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"},
    ))["Role"]["Arn"]
    iam.put_role_policy(RoleName=ids["role"], PolicyName=ids["inline"], PolicyDocument=allow_s3)
    ids["policy"] = f"{tag}-policy"
    ids["policy_arn"] = iam.create_policy(PolicyName=ids["policy"], PolicyDocument=allow_s3)["Policy"]["Arn"]
    iam.attach_user_policy(UserName=ids["user"], PolicyArn=ids["policy_arn"])
    iam.attach_role_policy(RoleName=ids["role"], PolicyArn=ids["policy_arn"])

    ids["bucket"] = f"{tag}-bucket"
    s3.create_bucket(Bucket=ids["bucket"])
    ids["key"] = f"{tag}-object"
    s3.put_object(Bucket=ids["bucket"], Key=ids["key"], Body=b"isolation")
    ids["upload"] = s3.create_multipart_upload(Bucket=ids["bucket"], Key=ids["key"])["UploadId"]
    s3.put_bucket_policy(Bucket=ids["bucket"], Policy=policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{aid}:root"}, "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{ids['bucket']}/*"}))
    s3.put_bucket_encryption(Bucket=ids["bucket"], ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})

    key = kms.create_key(Description=tag)["KeyMetadata"]
    ids["kms_key_arn"] = key["Arn"]
    ids["alias"] = f"alias/{tag}-alias"
    kms.create_alias(AliasName=ids["alias"], TargetKeyId=key["KeyId"])
    ids["alias_arn"] = f"arn:aws:kms:{REGION}:{aid}:{ids['alias']}"
    ids["ciphertext"] = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"isolation")["CiphertextBlob"]

    ids["pipeline"] = f"{tag}-pipeline"
    ids["pipeline_arn"] = sm.create_pipeline(
        PipelineName=ids["pipeline"], RoleArn=ids["role_arn"], ClientRequestToken=str(uuid.uuid4()),
        PipelineDefinition=PIPELINE_DEFINITION)["PipelineArn"]
    ids["execution_arn"] = sm.start_pipeline_execution(PipelineName=ids["pipeline"],
                                                       ClientRequestToken=str(uuid.uuid4()))["PipelineExecutionArn"]
    callback = sm.create_pipeline(PipelineName=f"{tag}-callback", RoleArn=ids["role_arn"],
                                  ClientRequestToken=str(uuid.uuid4()), PipelineDefinition=CALLBACK_DEFINITION)
    waiting = sm.start_pipeline_execution(PipelineName=callback["PipelineArn"],
                                          ClientRequestToken=str(uuid.uuid4()))["PipelineExecutionArn"]
    ids["callback_token"] = _callback_token(sm, waiting)
    s3.put_object(Bucket=ids["bucket"], Key="definition.json", Body=PIPELINE_DEFINITION.encode())
    ids["model"] = f"{tag}-model"
    ids["model_arn"] = sm.create_model(ModelName=ids["model"], ExecutionRoleArn=ids["role_arn"],
                                       PrimaryContainer={"Image": UNKNOWN_IMAGE})["ModelArn"]
    # An endpoint of that model: its image is unknown, so it fails at once and runs nothing.
    ids["endpoint_config"] = f"{tag}-endpoint-config"
    ids["endpoint_config_arn"] = sm.create_endpoint_config(EndpointConfigName=ids["endpoint_config"], ProductionVariants=[
        {"VariantName": "v", "ModelName": ids["model"], "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}]
    )["EndpointConfigArn"]
    ids["endpoint"] = f"{tag}-endpoint"
    ids["endpoint_arn"] = sm.create_endpoint(EndpointName=ids["endpoint"],
                                             EndpointConfigName=ids["endpoint_config"])["EndpointArn"]
    ids["group"] = f"{tag}-group"
    ids["group_arn"] = sm.create_model_package_group(ModelPackageGroupName=ids["group"])["ModelPackageGroupArn"]
    ids["package_arn"] = sm.create_model_package(ModelPackageGroupName=ids["group"],
                                                 InferenceSpecification=INFERENCE_SPEC)["ModelPackageArn"]
    sm.put_model_package_group_policy(ModelPackageGroupName=ids["group"], ResourcePolicy=policy(
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{aid}:root"},
         "Action": "sagemaker:DescribeModelPackageGroup", "Resource": ids["group_arn"]}))
    ids["lifecycle_config"] = f"{tag}-lcc"
    ids["lifecycle_config_arn"] = sm.create_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=ids["lifecycle_config"],
        OnStart=[{"Content": "ZWNobyBpc29sYXRpb24K"}])["NotebookInstanceLifecycleConfigArn"]
    ids["code_repository"] = f"{tag}-repo"
    ids["code_repository_arn"] = sm.create_code_repository(
        CodeRepositoryName=ids["code_repository"],
        GitConfig={"RepositoryUrl": "https://git.example.com/isolation.git"})["CodeRepositoryArn"]
    ids["notebook"] = f"{tag}-notebook"
    ids["notebook_arn"] = sm.create_notebook_instance(NotebookInstanceName=ids["notebook"], InstanceType="ml.t3.medium",
                                                      RoleArn=ids["role_arn"])["NotebookInstanceArn"]
    for kind in ("processing", "training", "transform", "tuning"):
        ids[f"{kind}_job"] = f"{tag}-{kind}"
        _COMPLETE_JOBS[kind](sm, r, ids[f"{kind}_job"])

    ids["share_arn"] = ram.create_resource_share(name=f"{tag}-share", resourceArns=[ids["pipeline_arn"]]
                                                 )["resourceShare"]["resourceShareArn"]

    ids["bus"] = f"{tag}-bus"
    ids["bus_arn"] = events.create_event_bus(Name=ids["bus"])["EventBusArn"]
    events.put_permission(EventBusName=ids["bus"], StatementId="own", Action="events:PutEvents", Principal=aid)
    ids["rule"] = f"{tag}-rule"
    ids["rule_arn"] = events.put_rule(Name=ids["rule"], EventBusName=ids["bus"],
                                      EventPattern=json.dumps({"source": ["isolation"]}))["RuleArn"]
    ids["default_bus_arn"] = ids["bus_arn"].rsplit("/", 1)[0] + "/default"
    events.put_targets(Rule=ids["rule"], EventBusName=ids["bus"],
                       Targets=[{"Id": "default", "Arn": ids["default_bus_arn"]}])
    # A connection and an API destination named like the bus (names are per kind of resource).
    ids["connection_arn"] = events.create_connection(Name=ids["bus"], AuthorizationType="API_KEY", AuthParameters={
        "ApiKeyAuthParameters": {"ApiKeyName": "X-Api-Key", "ApiKeyValue": f"{tag}-secret"}})["ConnectionArn"]
    events.create_api_destination(Name=ids["bus"], ConnectionArn=ids["connection_arn"],
                                  InvocationEndpoint="http://127.0.0.1:9/hook", HttpMethod="POST")
    ids["archive"] = f"{tag}-archive"
    ids["archive_arn"] = events.create_archive(ArchiveName=ids["archive"], EventSourceArn=ids["bus_arn"])["ArchiveArn"]
    ids["replay"] = f"{tag}-replay"
    events.start_replay(ReplayName=ids["replay"], EventSourceArn=ids["archive_arn"], Destination={"Arn": ids["bus_arn"]},
                        EventStartTime=datetime.now(UTC) - timedelta(hours=1), EventEndTime=datetime.now(UTC))

    cw, logs = r.client("cloudwatch"), r.client("logs")
    ids["metric"] = f"{tag}-metric"
    cw.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=[
        {"MetricName": ids["metric"], "Value": v, "Timestamp": datetime.now(UTC)} for v in OWNER_DATAPOINTS])
    ids["alarm"] = f"{tag}-alarm"
    cw.put_metric_alarm(AlarmName=ids["alarm"], Namespace=METRIC_NAMESPACE, MetricName=ids["metric"],
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=100.0,
                        ComparisonOperator="GreaterThanThreshold", Tags=[{"Key": "isolation", "Value": tag}])
    ids["alarm_arn"] = cw.describe_alarms(AlarmNames=[ids["alarm"]])["MetricAlarms"][0]["AlarmArn"]
    cw.set_alarm_state(AlarmName=ids["alarm"], StateValue="ALARM", StateReason=f"{tag} history")
    ids["log_group"] = f"/isolation/{tag}-logs"
    logs.create_log_group(logGroupName=ids["log_group"], tags={"isolation": tag})
    logs.put_retention_policy(logGroupName=ids["log_group"], retentionInDays=7)
    ids["log_group_arn"] = f"arn:aws:logs:{REGION}:{aid}:log-group:{ids['log_group']}"
    ids["log_stream"] = f"{tag}-stream"
    logs.create_log_stream(logGroupName=ids["log_group"], logStreamName=ids["log_stream"])
    logs.put_log_events(logGroupName=ids["log_group"], logStreamName=ids["log_stream"], logEvents=[
        {"timestamp": int(time.time() * 1000), "message": f"{tag} event"}])
    # A group of the same name in every account: another account's ARN of it names that account's
    # group, never the caller's namesake.
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=COMMON_LOG_GROUP)
    ids["common_log_group_arn"] = f"arn:aws:logs:{REGION}:{aid}:log-group:{COMMON_LOG_GROUP}"
    return r


def add_organization(server: StratumServer, *accounts: Resources) -> Resources:
    """The organization's resources, held by its management account: its root, an OU and a member
    account it created (whose create-account request is kept), that member registered as a
    delegated administrator. Every account of the organization names the same ones, so they go in
    each ``accounts``' ids too; the management account's :class:`Resources` is returned.

    The new member also receives each account's RAM share (so GetResourcePolicies has a policy to
    leak), as a fixture-only account, which no other test's listings see."""
    first = accounts[0]
    org = first.client("organizations").describe_organization()["Organization"]
    name = next(n for n in DEFAULT_ACCOUNTS if _account_id(server, n) == org["MasterAccountId"])
    management = Resources(server, name, first.tag)
    orgs = management.client("organizations")
    ids = management.ids
    ids["management_account"] = name
    ids["organization_id"] = org["Id"]
    ids["root_id"] = orgs.list_roots()["Roots"][0]["Id"]
    ids["ou_id"] = orgs.create_organizational_unit(ParentId=ids["root_id"], Name=f"{first.tag}-ou")[
        "OrganizationalUnit"]["Id"]
    ids["create_account_request"] = orgs.create_account(
        Email=f"{first.tag}@example.com", AccountName=f"{first.tag}-member")["CreateAccountStatus"]["Id"]
    status = orgs.describe_create_account_status(CreateAccountRequestId=ids["create_account_request"])
    ids["member_id"] = status["CreateAccountStatus"]["AccountId"]
    orgs.register_delegated_administrator(AccountId=ids["member_id"], ServicePrincipal="sagemaker.amazonaws.com")
    for r in accounts:
        r.ids.update(ids)
        r.client("ram").associate_resource_share(resourceShareArn=r.ids["share_arn"], principals=[ids["member_id"]])
    return management


def _account_id(server: StratumServer, name: str) -> str | None:
    try:
        return server.account_id(name)
    except KeyError:
        return None


def add_invitations(server: StratumServer, *accounts: Resources) -> None:
    """A pending RAM invitation received by each account: one from an account outside the
    organization (made with ``stratum accounts create --standalone``), whose shares need one. Its
    administrator's credentials are kept (``outsider``): it answers for every account outside the
    organization."""
    cmd = [sys.executable, "-m", "stratum.cli", "accounts", "create", "--standalone", "--name", fresh("iso-ext"),
           "--data-dir", str(server.data_dir)]
    if server.database_url:
        cmd += ["--database-url", server.database_url]
    out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    creds = {"aws_access_key_id": out["AccessKeyId"], "aws_secret_access_key": out["SecretAccessKey"]}
    sm, ram = client(server, "sagemaker", creds), client(server, "ram", creds)
    for r in accounts:
        r.ids["outsider"] = creds
        pipeline = sm.create_pipeline(PipelineName=fresh("iso-ext"), RoleArn=f"arn:aws:iam::{out['AccountId']}:role/x",
                                      PipelineDefinition=PIPELINE_DEFINITION)["PipelineArn"]
        share = ram.create_resource_share(name=f"{r.tag}-invite", resourceArns=[pipeline],
                                          principals=[r.account_id])["resourceShare"]["resourceShareArn"]
        invitations = r.client("ram").get_resource_share_invitations(resourceShareArns=[share])
        r.ids["invitation_arn"] = invitations["resourceShareInvitations"][0]["resourceShareInvitationArn"]


PIPELINE_DEFINITION = json.dumps({
    "Version": "2020-12-01", "Metadata": {}, "Parameters": [],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "isolation"}}]})
CALLBACK_DEFINITION = json.dumps({
    "Version": "2020-12-01", "Metadata": {}, "Parameters": [],
    "Steps": [{"Name": "Wait", "Type": "Callback", "Arguments": {},
               "SqsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/isolation",
               "OutputParameters": [{"OutputName": "note", "OutputType": "String"}]}]})


def _callback_token(sm: Any, execution_arn: str) -> str:
    """The token of the execution's waiting Callback step, once it waits."""
    deadline = time.monotonic() + 30
    while True:
        for step in sm.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)["PipelineExecutionSteps"]:
            token = step.get("Metadata", {}).get("Callback", {}).get("CallbackToken")
            if token and step["StepStatus"] == "Executing":
                return str(token)
        if time.monotonic() > deadline:
            raise AssertionError(f"the Callback step of {execution_arn} never waited")
        time.sleep(0.1)


INFERENCE_SPEC = {"Containers": [{"Image": UNKNOWN_IMAGE}], "SupportedContentTypes": ["text/csv"],
                  "SupportedResponseMIMETypes": ["text/csv"]}


def _job_request(kind: str, r: Resources, name: str) -> dict[str, Any]:
    ids = r.ids
    out = f"s3://{ids['bucket']}/out"
    resources = {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5}
    if kind == "processing":
        return {"ProcessingJobName": name, "RoleArn": ids["role_arn"],
                "ProcessingResources": {"ClusterConfig": resources},
                "AppSpecification": {"ImageUri": UNKNOWN_IMAGE}}
    training = {"RoleArn": ids["role_arn"], "OutputDataConfig": {"S3OutputPath": out},
                "AlgorithmSpecification": {"TrainingImage": UNKNOWN_IMAGE, "TrainingInputMode": "File"},
                "ResourceConfig": resources, "StoppingCondition": {"MaxRuntimeInSeconds": 60}}
    if kind == "training":
        return {"TrainingJobName": name, **training}
    if kind == "transform":
        return {"TransformJobName": name, "ModelName": ids["model"],
                "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": out}}},
                "TransformOutput": {"S3OutputPath": out},
                "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}
    training["AlgorithmSpecification"]["MetricDefinitions"] = [{"Name": "loss", "Regex": "loss: ([0-9.]+)"}]
    return {"HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": {
                "Strategy": "Random", "ResourceLimits": {"MaxNumberOfTrainingJobs": 1, "MaxParallelTrainingJobs": 1},
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
                "ParameterRanges": {"ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]}},
            "TrainingJobDefinition": {k: v for k, v in training.items() if k != "AlgorithmSpecification"}
            | {"AlgorithmSpecification": training["AlgorithmSpecification"]}}


def _create_job(kind: str) -> Callable[[Any, Resources, str], None]:
    method = {"processing": "create_processing_job", "training": "create_training_job",
              "transform": "create_transform_job", "tuning": "create_hyper_parameter_tuning_job"}[kind]

    def create(sm: Any, r: Resources, name: str) -> None:
        getattr(sm, method)(**_job_request(kind, r, name))

    return create


_COMPLETE_JOBS = {kind: _create_job(kind) for kind in ("processing", "training", "transform", "tuning")}


# ------------------------------------------------------------------ members that name resources
#
# (service or "*", member) -> how to name the fixture resource in that member, most telling first
# (an ARN says which account it means; a name is looked up in the caller's own account). Members
# not listed here are filled with minimal valid values.
def _ids(*keys: str) -> Callable[[Resources], list[Any]]:
    return lambda r: [r.ids[k] for k in keys]


RESOURCE_MEMBERS: dict[tuple[str, str], Callable[[Resources], list[Any]]] = {
    ("iam", "UserName"): _ids("user"),
    ("iam", "RoleName"): _ids("role"),
    ("iam", "PolicyName"): _ids("inline"),
    ("iam", "PolicyArn"): _ids("policy_arn"),
    ("iam", "PermissionsBoundary"): _ids("policy_arn"),
    ("iam", "AccessKeyId"): _ids("access_key"),
    ("iam", "PolicySourceArn"): _ids("user_arn", "role_arn"),
    ("sts", "RoleArn"): _ids("role_arn"),
    ("sts", "PolicyArns"): lambda r: [[{"arn": r.ids["policy_arn"]}]],
    ("s3", "Bucket"): _ids("bucket"),
    ("s3", "CopySource"): lambda r: [f"{r.ids['bucket']}/{r.ids['key']}"],
    ("kms", "KeyId"): _ids("kms_key_arn", "alias_arn"),
    ("kms", "TargetKeyId"): _ids("kms_key_arn"),
    ("kms", "DestinationKeyId"): _ids("kms_key_arn"),
    ("kms", "SourceKeyId"): _ids("kms_key_arn"),
    ("kms", "AliasName"): _ids("alias"),
    ("kms", "CiphertextBlob"): _ids("ciphertext"),
    ("sagemaker", "RoleArn"): _ids("role_arn"),
    ("sagemaker", "ExecutionRoleArn"): _ids("role_arn"),
    ("sagemaker", "PipelineName"): _ids("pipeline_arn", "pipeline"),
    ("sagemaker", "PipelineArn"): _ids("pipeline_arn"),
    ("sagemaker", "PipelineExecutionArn"): _ids("execution_arn"),
    ("sagemaker", "ModelName"): _ids("model"),
    ("sagemaker", "ModelPackageGroupName"): _ids("group_arn", "group"),
    ("sagemaker", "ModelPackageName"): _ids("package_arn"),
    ("sagemaker", "ModelPackageArn"): _ids("package_arn"),
    ("sagemaker", "ModelPackageArnList"): lambda r: [[r.ids["package_arn"]]],
    ("sagemaker", "ProcessingJobName"): _ids("processing_job"),
    ("sagemaker", "TrainingJobName"): _ids("training_job"),
    ("sagemaker", "TransformJobName"): _ids("transform_job"),
    ("sagemaker", "HyperParameterTuningJobName"): _ids("tuning_job"),
    ("sagemaker", "EndpointConfigName"): _ids("endpoint_config"),
    ("sagemaker", "EndpointName"): _ids("endpoint"),
    ("sagemaker", "ResourceArn"): _ids("pipeline_arn", "model_arn", "group_arn", "endpoint_arn", "endpoint_config_arn",
                                       "notebook_arn", "lifecycle_config_arn", "code_repository_arn"),
    ("sagemaker", "NotebookInstanceName"): _ids("notebook"),
    ("sagemaker", "NotebookInstanceLifecycleConfigName"): _ids("lifecycle_config"),
    ("sagemaker", "CodeRepositoryName"): _ids("code_repository"),
    ("sagemaker", "CallbackToken"): _ids("callback_token"),
    ("ram", "resourceShareArn"): _ids("share_arn"),
    ("ram", "resourceShareArns"): lambda r: [[r.ids["share_arn"]]],
    ("ram", "resourceArn"): _ids("pipeline_arn"),
    ("ram", "resourceArns"): lambda r: [[r.ids["pipeline_arn"]]],
    ("ram", "resourceShareInvitationArn"): _ids("invitation_arn"),
    ("ram", "resourceShareInvitationArns"): lambda r: [[r.ids["invitation_arn"]]],
    # Organizations: the organization's resources are the management account's; a member account is
    # named by its ID (a parent by root or OU ID, a child by account or OU ID).
    ("organizations", "ParentId"): _ids("root_id", "ou_id"),
    ("organizations", "SourceParentId"): _ids("root_id"),
    ("organizations", "DestinationParentId"): _ids("ou_id"),
    ("organizations", "OrganizationalUnitId"): _ids("ou_id"),
    ("organizations", "ChildId"): _ids("member_id", "ou_id"),
    ("organizations", "AccountId"): _ids("member_id"),
    ("organizations", "CreateAccountRequestId"): _ids("create_account_request"),
    ("events", "Name"): _ids("bus_arn", "bus"),
    ("events", "EventBusName"): _ids("bus_arn", "bus"),
    ("events", "ResourceARN"): _ids("bus_arn", "rule_arn"),
    ("events", "Rule"): _ids("rule"),
    ("events", "ConnectionArn"): _ids("connection_arn"),
    ("events", "ArchiveName"): _ids("archive"),
    ("events", "ReplayName"): _ids("replay"),
    # a bus ARN for archives, an archive ARN for replays: both are tried on each
    ("events", "EventSourceArn"): _ids("bus_arn", "archive_arn"),
    ("events", "Entries"): lambda r: [[{"EventBusName": r.ids["bus_arn"], "Source": "isolation",
                                        "DetailType": "probe", "Detail": "{}"}]],
    # CloudWatch: alarms by name (in the caller's account) or ARN; a metric by its name in the
    # shared namespace (metrics have no ARN: their actions take resource "*").
    ("cloudwatch", "AlarmName"): _ids("alarm"),
    ("cloudwatch", "AlarmNames"): lambda r: [[r.ids["alarm"]]],
    ("cloudwatch", "ResourceARN"): _ids("alarm_arn"),
    ("cloudwatch", "MetricName"): _ids("metric"),
    ("logs", "logGroupName"): _ids("log_group"),
    ("logs", "logGroupIdentifier"): _ids("log_group_arn", "log_group"),
    ("logs", "logGroupIdentifiers"): lambda r: [[r.ids["log_group_arn"]], [r.ids["common_log_group_arn"]]],
    ("logs", "logGroupNamePrefix"): _ids("log_group"),
    ("logs", "resourceArn"): _ids("log_group_arn"),
}

# Members that name the resource the call creates (or a name inside a resource of the caller's
# own): a name in the caller's namespace, where another account's use of the same name is no
# conflict. They get fresh names and are never swapped.
CREATED: dict[tuple[str, str], frozenset[str]] = {
    ("iam", "CreateUser"): frozenset({"UserName"}),
    ("iam", "CreateRole"): frozenset({"RoleName"}),
    ("iam", "CreatePolicy"): frozenset({"PolicyName"}),
    ("iam", "PutUserPolicy"): frozenset({"PolicyName"}),
    ("iam", "PutRolePolicy"): frozenset({"PolicyName"}),
    ("s3", "CreateBucket"): frozenset({"Bucket"}),
    ("kms", "CreateAlias"): frozenset({"AliasName"}),
    ("sagemaker", "CreateModel"): frozenset({"ModelName"}),
    ("sagemaker", "CreateModelPackageGroup"): frozenset({"ModelPackageGroupName"}),
    ("sagemaker", "CreateEndpointConfig"): frozenset({"EndpointConfigName"}),
    ("sagemaker", "CreateEndpoint"): frozenset({"EndpointName"}),
    ("sagemaker", "CreatePipeline"): frozenset({"PipelineName"}),
    ("sagemaker", "CreateProcessingJob"): frozenset({"ProcessingJobName"}),
    ("sagemaker", "CreateTrainingJob"): frozenset({"TrainingJobName"}),
    ("sagemaker", "CreateTransformJob"): frozenset({"TransformJobName"}),
    ("sagemaker", "CreateHyperParameterTuningJob"): frozenset({"HyperParameterTuningJobName"}),
    ("sagemaker", "CreateNotebookInstance"): frozenset({"NotebookInstanceName"}),
    ("sagemaker", "CreateNotebookInstanceLifecycleConfig"): frozenset({"NotebookInstanceLifecycleConfigName"}),
    ("sagemaker", "CreateCodeRepository"): frozenset({"CodeRepositoryName"}),
    ("events", "CreateEventBus"): frozenset({"Name"}),
    ("events", "PutRule"): frozenset({"Name"}),
    ("events", "CreateConnection"): frozenset({"Name"}),
    ("events", "CreateApiDestination"): frozenset({"Name"}),
    ("events", "CreateArchive"): frozenset({"ArchiveName"}),
    ("events", "StartReplay"): frozenset({"ReplayName"}),
    ("cloudwatch", "PutMetricAlarm"): frozenset({"AlarmName"}),
    ("logs", "CreateLogGroup"): frozenset({"logGroupName"}),
    ("logs", "CreateLogStream"): frozenset({"logStreamName"}),
}

# Members that only mean something inside another resource member of the same call (an S3 key in
# its bucket, an upload in its key, a policy version in its policy): they follow it.
DEPENDENT: dict[tuple[str, str], dict[str, Callable[[Resources], Any]]] = {
    ("s3", "Bucket"): {"Key": lambda r: r.ids["key"], "UploadId": lambda r: r.ids["upload"]},
    ("cloudwatch", "MetricName"): {"Namespace": lambda r: METRIC_NAMESPACE},
    ("logs", "logGroupName"): {"logStreamName": lambda r: r.ids["log_stream"]},
    ("logs", "logGroupIdentifier"): {"logStreamName": lambda r: r.ids["log_stream"]}}


def _dependent(service: str, member: str) -> Callable[[Resources], Any] | None:
    for (svc, _parent), members in DEPENDENT.items():
        if svc == service and member in members:
            return members[member]
    return None


def _fresh_value(member: str) -> str:
    return f"alias/{fresh()}" if member == "AliasName" else fresh()


# ------------------------------------------------------------------------------ minimal values
_DOCUMENT_MEMBERS = {"PolicyDocument", "AssumeRolePolicyDocument", "Policy", "ResourcePolicy"}


def _document(service: str, operation: str, member: str, r: Resources) -> str:
    root = f"arn:aws:iam::{r.account_id}:root"
    if member == "AssumeRolePolicyDocument" or (service == "iam" and operation == "UpdateAssumeRolePolicy"):
        return policy({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "sts:AssumeRole"})
    if service == "kms":
        return policy({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"})
    if service == "s3":
        return policy({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{r.ids['bucket']}/*"})
    if service == "sagemaker":
        return policy({"Effect": "Allow", "Principal": {"AWS": root}, "Action": "sagemaker:DescribeModelPackageGroup",
                       "Resource": r.ids["group_arn"]})
    return policy({"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"})


def minimal(shape: Shape, name: str, depth: int = 0) -> Any:
    """A small value the model accepts for ``shape``."""
    kind = shape.type_name
    if kind == "structure":
        return {m: minimal(shape.members[m], m, depth + 1) for m in shape.required_members} if depth < 6 else {}
    if kind == "list":
        return [minimal(shape.member, name, depth + 1)]
    if kind == "map":
        return {"k": minimal(shape.value, name, depth + 1)}
    if kind in ("integer", "long"):
        return max(int(shape.metadata.get("min", 1)), 1)
    if kind in ("float", "double"):
        return 1.0
    if kind == "boolean":
        return False
    if kind == "blob":
        return b"isolation"
    if kind == "timestamp":
        return datetime.now(UTC)
    if shape.enum:
        return shape.enum[0]
    if depth and name.endswith("Key"):  # tag keys and the like: short
        return "k"
    text = "isolation"[: max(int(shape.metadata.get("max", 9)), 1)]
    return text.ljust(int(shape.metadata.get("min", 0)), "x")


# Operations whose inputs must hang together beyond what the model says: the complete request, for
# the caller's own resources (``r``), before any swap.
def _complete(service: str, operation: str, r: Resources) -> dict[str, Any] | None:
    ids = r.ids
    match (service, operation):
        case ("sagemaker", "CreateProcessingJob"):
            return _job_request("processing", r, fresh())
        case ("sagemaker", "CreateTrainingJob"):
            return _job_request("training", r, fresh())
        case ("sagemaker", "CreateTransformJob"):
            return _job_request("transform", r, fresh())
        case ("sagemaker", "CreateHyperParameterTuningJob"):
            return _job_request("tuning", r, fresh())
        case ("sagemaker", "CreatePipeline"):
            return {"PipelineName": fresh(), "RoleArn": ids["role_arn"], "ClientRequestToken": str(uuid.uuid4()),
                    "PipelineDefinition": PIPELINE_DEFINITION}
        case ("sagemaker", "UpdatePipeline"):
            return {"PipelineName": ids["pipeline"], "PipelineDescription": "isolation"}
        case ("sagemaker", "CreateModel"):
            return {"ModelName": fresh(), "ExecutionRoleArn": ids["role_arn"],
                    "PrimaryContainer": {"Image": UNKNOWN_IMAGE}}
        case ("sagemaker", "CreateModelPackage"):
            return {"ModelPackageGroupName": ids["group"], "InferenceSpecification": INFERENCE_SPEC}
        case ("sagemaker", "UpdatePipelineVersion"):
            return {"PipelineArn": ids["pipeline_arn"], "PipelineVersionId": 1,
                    "PipelineVersionDescription": "isolation"}
        case ("sagemaker", "UpdateModelPackage"):
            return {"ModelPackageArn": ids["package_arn"], "ApprovalDescription": "isolation"}
        case ("sagemaker", "CreateEndpointConfig"):
            return {"EndpointConfigName": fresh(), "ProductionVariants": [
                {"VariantName": "v", "ModelName": ids["model"], "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large"}]}
        case ("sagemaker", "CreateEndpoint") | ("sagemaker", "UpdateEndpoint"):
            name = fresh() if operation == "CreateEndpoint" else ids["endpoint"]
            return {"EndpointName": name, "EndpointConfigName": ids["endpoint_config"]}
        case ("sagemaker", "UpdateEndpointWeightsAndCapacities"):
            return {"EndpointName": ids["endpoint"], "DesiredWeightsAndCapacities": [
                {"VariantName": "v", "DesiredWeight": 1.0}]}
        case ("sagemaker", "Search"):
            return {"Resource": "Pipeline"}
        case ("sagemaker", "CreateCodeRepository"):
            return {"CodeRepositoryName": fresh(), "GitConfig": {"RepositoryUrl": "https://git.example.com/iso.git"}}
        case ("sagemaker", "CreateNotebookInstance"):
            return {"NotebookInstanceName": fresh(), "InstanceType": "ml.t3.medium", "RoleArn": ids["role_arn"]}
        case ("s3", "PutBucketEncryption"):
            return {"Bucket": ids["bucket"], "ServerSideEncryptionConfiguration": {
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}}
        case ("s3", "PutBucketVersioning"):
            return {"Bucket": ids["bucket"], "VersioningConfiguration": {"Status": "Suspended"}}
        case ("s3", "DeleteObjects"):
            return {"Bucket": ids["bucket"], "Delete": {"Objects": [{"Key": ids["key"]}]}}
        case ("s3", "CompleteMultipartUpload"):
            return {"Bucket": ids["bucket"], "Key": ids["key"], "UploadId": ids["upload"],
                    "MultipartUpload": {"Parts": [{"PartNumber": 1, "ETag": '"0"'}]}}
        case ("kms", "GenerateDataKey") | ("kms", "GenerateDataKeyWithoutPlaintext"):
            return {"KeyId": ids["kms_key_arn"], "KeySpec": "AES_256"}
        case ("kms", "UpdateKeyDescription"):
            return {"KeyId": ids["kms_key_arn"], "Description": "isolation"}
        case ("kms", "ScheduleKeyDeletion"):
            return {"KeyId": ids["kms_key_arn"], "PendingWindowInDays": 7}
        case ("iam", "SimulateCustomPolicy"):
            return {"PolicyInputList": [policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})],
                    "ActionNames": ["s3:GetObject"]}
        case ("iam", "UpdateAccessKey"):
            return {"AccessKeyId": ids["access_key"], "UserName": ids["user"], "Status": "Active"}
        case ("iam", "GetPolicyVersion") | ("iam", "SetDefaultPolicyVersion") | ("iam", "DeletePolicyVersion"):
            return {"PolicyArn": ids["policy_arn"], "VersionId": "v1"}
        case ("iam", "TagUser") | ("iam", "TagRole"):
            member = "UserName" if operation == "TagUser" else "RoleName"
            return {member: ids["user" if operation == "TagUser" else "role"],
                    "Tags": [{"Key": "isolation", "Value": "v"}]}
        case ("events", "PutPermission"):
            return {"EventBusName": ids["bus"], "StatementId": fresh("sid"), "Action": "events:PutEvents",
                    "Principal": r.account_id}
        case ("events", "RemovePermission"):
            return {"EventBusName": ids["bus"], "StatementId": "absent"}
        case ("events", "UpdateEventBus") | ("events", "DescribeEventBus"):
            return {"Name": ids["bus"]}
        case ("events", "PutRule"):
            return {"EventBusName": ids["bus"], "EventPattern": json.dumps({"source": ["isolation"]})}
        case ("events", "DescribeRule") | ("events", "EnableRule") | ("events", "DisableRule"):
            return {"Name": ids["rule"], "EventBusName": ids["bus"]}
        case ("events", "DeleteRule"):  # the owner's rule has a target: delete a missing one (succeeds)
            return {"Name": fresh("rule"), "EventBusName": ids["bus"]}
        case ("events", "ListTargetsByRule"):
            return {"Rule": ids["rule"], "EventBusName": ids["bus"]}
        case ("events", "PutTargets"):
            return {"Rule": ids["rule"], "EventBusName": ids["bus"],
                    "Targets": [{"Id": "default", "Arn": ids["default_bus_arn"]}]}
        case ("events", "RemoveTargets"):
            return {"Rule": ids["rule"], "EventBusName": ids["bus"], "Ids": ["absent"]}
        case ("events", "CreateConnection"):
            return {"AuthorizationType": "API_KEY",
                    "AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}}}
        case ("events", "CreateApiDestination"):
            return {"ConnectionArn": ids["connection_arn"], "InvocationEndpoint": "http://127.0.0.1:9/hook",
                    "HttpMethod": "POST"}
        case ("events", "StartReplay"):
            return {"EventSourceArn": ids["archive_arn"], "Destination": {"Arn": ids["bus_arn"]},
                    "EventStartTime": datetime.now(UTC) - timedelta(hours=1), "EventEndTime": datetime.now(UTC)}
        case ("events", "ListRules"):
            return {"EventBusName": ids["bus"]}
        case ("events", "ListRuleNamesByTarget"):
            return {"EventBusName": ids["bus"], "TargetArn": ids["default_bus_arn"]}
        case ("events", "TestEventPattern"):
            return {"EventPattern": json.dumps({"source": ["isolation"]}), "Event": json.dumps({
                "id": "1", "account": r.account_id, "source": "isolation", "time": "2026-01-01T00:00:00Z",
                "region": "us-east-1", "resources": [], "detail-type": "probe", "detail": {}})}
        case ("ram", "GetResourceShares") | ("ram", "ListResources") | ("ram", "ListPrincipals"):
            return {"resourceOwner": "SELF"}
        case ("ram", "GetResourceShareAssociations"):
            return {"associationType": "RESOURCE", "resourceShareArns": [ids["share_arn"]]}
        case ("ram", "TagResource"):
            return {"resourceShareArn": ids["share_arn"], "tags": [{"key": "isolation", "value": "v"}]}
        case ("ram", "UntagResource"):
            return {"resourceShareArn": ids["share_arn"], "tagKeys": ["isolation"]}
        case ("ram", "AssociateResourceSharePermission"):
            return {"resourceShareArn": ids["share_arn"],
                    "permissionArn": "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"}
        case ("ram", "GetPermission") | ("ram", "ListPermissionVersions"):
            return {"permissionArn": "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"}
        case ("organizations", "CreateAccount"):
            return {"Email": f"{fresh()}@example.com", "AccountName": fresh()}
        case ("organizations", "RegisterDelegatedAdministrator") \
                | ("organizations", "DeregisterDelegatedAdministrator"):
            return {"AccountId": ids["member_id"], "ServicePrincipal": "sagemaker.amazonaws.com"}
        case ("sts", "AssumeRole"):
            return {"RoleArn": ids["role_arn"], "RoleSessionName": "isolation"}
        case ("cloudwatch", "GetMetricStatistics"):
            return {"Namespace": METRIC_NAMESPACE, "MetricName": ids["metric"], "Period": 60,
                    "Statistics": ["Sum", "SampleCount"], **_metric_window()}
        case ("cloudwatch", "GetMetricData"):
            return {"MetricDataQueries": [_metric_query(ids["metric"])], **_metric_window()}
        case ("cloudwatch", "PutMetricData"):
            return {"Namespace": METRIC_NAMESPACE, "MetricData": [{"MetricName": ids["metric"], "Value": 1.0}]}
        case ("cloudwatch", "PutMetricAlarm"):
            return {"AlarmName": fresh(), "Namespace": METRIC_NAMESPACE, "MetricName": ids["metric"],
                    "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 100.0,
                    "ComparisonOperator": "GreaterThanThreshold"}
        case ("logs", "PutLogEvents"):
            return {"logGroupName": ids["log_group"], "logStreamName": ids["log_stream"],
                    "logEvents": [{"timestamp": int(time.time() * 1000), "message": "isolation"}]}
    return None


def _metric_window() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"StartTime": now - timedelta(hours=1), "EndTime": now + timedelta(minutes=5)}


def _metric_query(metric: str) -> dict[str, Any]:
    return {"Id": "m", "MetricStat": {"Metric": {"Namespace": METRIC_NAMESPACE, "MetricName": metric},
                                      "Period": 60, "Stat": "Sum"}}


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    swapped: tuple[str, ...]  # members naming the other account's resource ("" when none)

    def describe(self) -> str:
        shown = {k: (v if not isinstance(v, bytes) else "<bytes>") for k, v in self.params.items()
                 if k in {s.split(".")[0] for s in self.swapped}}
        return f"{self.service}:{self.operation} {json.dumps(shown, default=str)[:200]}"


def _fits(shape: Shape, value: Any) -> bool:
    """Whether ``value`` passes the model's own constraints for ``shape`` (a name where only an ARN
    fits would be refused as malformed, which says nothing about isolation)."""
    if shape.type_name != "string" or not isinstance(value, str):
        return True
    if not int(shape.metadata.get("min", 0)) <= len(value) <= int(shape.metadata.get("max", 1 << 30)):
        return False
    pattern = shape.metadata.get("pattern")
    if not pattern:
        return True
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return True


def resource_values(service: str, operation: str, member: str, r: Resources) -> list[Any]:
    shape = operation_model(service, operation).input_shape
    assert shape is not None
    return [v for v in RESOURCE_MEMBERS[(service, member)](r) if _fits(shape.members[member], v)]


def own_call(service: str, operation: str, r: Resources) -> dict[str, Any]:
    """A valid call of ``operation`` on ``r``'s own resources (fresh names for what it creates)."""
    shape = operation_model(service, operation).input_shape
    complete = _complete(service, operation, r)
    params: dict[str, Any] = dict(complete) if complete is not None else {}
    if shape is None:
        return params
    created = CREATED.get((service, operation), frozenset())
    kept = _OPTIONAL_KEPT.get((service, operation), ())
    for member in shape.members:
        if member in created:
            params[member] = _fresh_value(member)
        elif member in params or not (member in shape.required_members or member in kept):
            continue
        elif (service, member) in RESOURCE_MEMBERS:
            params[member] = resource_values(service, operation, member, r)[0]
        elif (dependent := _dependent(service, member)) is not None:
            params[member] = dependent(r)
        elif member in _DOCUMENT_MEMBERS:
            params[member] = _document(service, operation, member, r)
        else:
            params[member] = minimal(shape.members[member], member)
    return params


# Optional members that name the resource the operation acts on (left out, they mean the caller
# itself, or every resource): named in generated calls so the swap reaches them.
_OPTIONAL_KEPT: dict[tuple[str, str], tuple[str, ...]] = {
    ("iam", "GetUser"): ("UserName",),
    ("iam", "ListAccessKeys"): ("UserName",),
    ("iam", "CreateAccessKey"): ("UserName",),
    ("iam", "DeleteAccessKey"): ("UserName",),
    ("iam", "UpdateAccessKey"): ("UserName",),
    ("iam", "CreateUser"): ("PermissionsBoundary",),
    ("iam", "CreateRole"): ("PermissionsBoundary",),
    ("kms", "Decrypt"): ("CiphertextBlob",),
    ("kms", "ReEncrypt"): ("CiphertextBlob",),
    ("kms", "ListAliases"): ("KeyId",),
    ("sagemaker", "ListModelPackages"): ("ModelPackageGroupName",),
    ("sagemaker", "ListPipelineExecutionSteps"): ("PipelineExecutionArn",),
    ("sts", "AssumeRole"): ("PolicyArns",),
    ("ram", "GetResourceShareInvitations"): ("resourceShareInvitationArns",),
    ("ram", "ListPrincipals"): ("resourceShareArns",),
    ("ram", "ListResources"): ("resourceShareArns",),
    ("ram", "GetResourceShares"): ("resourceShareArns",),
    ("ram", "CreateResourceShare"): ("resourceArns",),
    ("ram", "AssociateResourceShare"): ("resourceArns",),
    ("ram", "DisassociateResourceShare"): ("resourceArns",),
    ("events", "DescribeEventBus"): ("Name",),
    ("events", "UpdateEventBus"): ("Name",),
    ("events", "PutPermission"): ("EventBusName",),
    ("events", "RemovePermission"): ("EventBusName",),
    ("cloudwatch", "DescribeAlarms"): ("AlarmNames",),
    ("cloudwatch", "DescribeAlarmHistory"): ("AlarmName",),
    ("cloudwatch", "ListMetrics"): ("MetricName",),
    ("logs", "DescribeLogStreams"): ("logGroupName",),
    ("logs", "FilterLogEvents"): ("logGroupName",),
    ("logs", "GetLogEvents"): ("logGroupName",),
}


# Resources named inside a structure member: (service, operation) -> (label, rewrite of the own
# call so that it names the other account's resource there).
NESTED: dict[tuple[str, str], list[tuple[str, Callable[[dict[str, Any], Resources], dict[str, Any]]]]] = {
    ("sagemaker", "CreateHyperParameterTuningJob"): [
        ("TrainingJobDefinition.RoleArn", lambda p, r: p | {"TrainingJobDefinition": p["TrainingJobDefinition"]
                                                          | {"RoleArn": r.ids["role_arn"]}})],
    ("sagemaker", "CreatePipeline"): [
        ("PipelineDefinitionS3Location", lambda p, r: {k: v for k, v in p.items() if k != "PipelineDefinition"}
         | {"PipelineDefinitionS3Location": {"Bucket": r.ids["bucket"], "ObjectKey": "definition.json"}})],
    ("sagemaker", "UpdatePipeline"): [
        ("PipelineDefinitionS3Location", lambda p, r: p | {"PipelineDefinitionS3Location": {
            "Bucket": r.ids["bucket"], "ObjectKey": "definition.json"}})],
    ("cloudwatch", "GetMetricData"): [
        ("MetricDataQueries.MetricStat.Metric.MetricName",
         lambda p, r: p | {"MetricDataQueries": [_metric_query(r.ids["metric"])]})],
    ("cloudwatch", "PutMetricData"): [
        ("MetricData.MetricName", lambda p, r: p | {"MetricData": [{"MetricName": r.ids["metric"], "Value": 1.0}]})],
}


# Optional members the model documents as an alternative to another ("specify either
# resourceShareArn or resourceArn, but not both"): (service, operation, member) -> the one it replaces.
_INSTEAD_OF = {("ram", "TagResource", "resourceArn"): "resourceShareArn",
               ("ram", "UntagResource", "resourceArn"): "resourceShareArn",
               ("logs", "DescribeLogStreams", "logGroupIdentifier"): "logGroupName",
               ("logs", "FilterLogEvents", "logGroupIdentifier"): "logGroupName",
               ("logs", "GetLogEvents", "logGroupIdentifier"): "logGroupName"}


def swaps(service: str, operation: str, mine: Resources, theirs: Resources) -> list[Call]:
    """The calls of ``operation`` on ``mine``'s resources with one resource member (and the members
    that depend on it) naming ``theirs`` instead, once per way of naming it."""
    base = own_call(service, operation, mine)
    created = CREATED.get((service, operation), frozenset())
    calls = []
    for member in list(base):
        if member in created or (service, member) not in RESOURCE_MEMBERS:
            continue
        for value in resource_values(service, operation, member, theirs):
            params = dict(base)
            params[member] = value
            swapped = [member]
            _follow(service, member, params, swapped, created, theirs)
            calls.append(Call(service, operation, params, tuple(swapped)))
    # Optional members that name a resource, added one at a time to the call (StartPipelineExecution
    # RoleArn, Decrypt KeyId, ListAliases KeyId...).
    shape = operation_model(service, operation).input_shape
    for member in shape.members if shape is not None else ():
        if member in base or member in created or (service, member) not in RESOURCE_MEMBERS:
            continue
        replaced = _INSTEAD_OF.get((service, operation, member))
        for value in resource_values(service, operation, member, theirs):
            params = {k: v for k, v in base.items() if k != replaced} | {member: value}
            swapped = [member]
            _follow(service, member, params, swapped, created, theirs)
            calls.append(Call(service, operation, params, tuple(swapped)))
    for label, rewrite in NESTED.get((service, operation), []):
        calls.append(Call(service, operation, rewrite(dict(base), theirs), (label,)))
    return calls


def _follow(service: str, member: str, params: dict[str, Any], swapped: list[str], created: frozenset[str],
            theirs: Resources) -> None:
    """The members of ``params`` that depend on ``member`` follow it to ``theirs`` (a name the call
    creates stays fresh)."""
    for dep, dep_value in DEPENDENT.get((service, member), {}).items():
        if dep in params and dep not in created:
            params[dep] = dep_value(theirs)
            swapped.append(dep)


# ------------------------------------------------------------------------------------- outcomes
@dataclass(frozen=True)
class Outcome:
    status: int
    code: str | None  # None: success
    message: str
    body: str  # the parsed response, as text, to look for the other account's names in


def call(c: Any, operation: str, params: dict[str, Any]) -> Outcome:
    from botocore.exceptions import ClientError

    method = getattr(c, _snake(operation))
    try:
        out = method(**params)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        return Outcome(exc.response["ResponseMetadata"].get("HTTPStatusCode", 0), err.get("Code", ""),
                       err.get("Message", ""), "")
    if hasattr(out.get("Body"), "read"):
        out["Body"] = out["Body"].read()
    return Outcome(out.get("ResponseMetadata", {}).get("HTTPStatusCode", 200), None, "",
                   json.dumps({k: v for k, v in out.items() if k != "ResponseMetadata"}, default=repr))


def _snake(name: str) -> str:
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)).lower()


def wait_until(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


# ------------------------------------------------------------------------ authentication paths
def signing_key(secret: str, date: str, service: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (REGION, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signed_chunked_put(endpoint: str, bucket: str, key: str, body: bytes, creds: dict[str, str],
                       chunk_size: int = 8192) -> tuple[int, bytes]:
    """A PutObject with a ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` body, framed and signed as the AWS
    documentation describes (botocore only streams unsigned chunks, over HTTPS)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    chunks = [body[i:i + chunk_size] for i in range(0, len(body), chunk_size)] + [b""]
    # Every chunk signature has 64 hex digits, so the framed length is known before signing.
    framed_length = sum(len(f"{len(c):x};chunk-signature=") + 64 + 2 + len(c) + 2 for c in chunks)
    request = AWSRequest("PUT", f"{endpoint}/{bucket}/{key}", headers={
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(body)), "content-length": str(framed_length)})
    class StreamingAuth(S3SigV4Auth):
        def payload(self, request: Any) -> str:
            return "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

    StreamingAuth(Credentials(creds["aws_access_key_id"], creds["aws_secret_access_key"],
                              creds.get("aws_session_token")), "s3", REGION).add_auth(request)
    amz_date = request.headers["X-Amz-Date"]
    seed = request.headers["Authorization"].rsplit("Signature=", 1)[1]
    k = signing_key(creds["aws_secret_access_key"], amz_date[:8], "s3")
    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    framed, previous = b"", seed
    for chunk in chunks:
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous,
                             hashlib.sha256(b"").hexdigest(), hashlib.sha256(chunk).hexdigest()])
        previous = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        framed += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk + b"\r\n"
    assert len(framed) == framed_length
    return http(request.method, request.url, framed, dict(request.headers.items()))


def http(method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
         ) -> tuple[int, bytes]:
    """(status, body) of a raw request, sent as curl would (urllib.request would add a form
    Content-Type, which a SigV2 signature covers)."""
    response = _POOL.request(method, url, body=body, headers=headers or {}, retries=False, redirect=False)
    return response.status, response.data


_POOL = urllib3.PoolManager()


def error_code(body: bytes) -> str | None:
    match = re.search(rb"<Code>([^<]+)</Code>", body)
    return match.group(1).decode() if match else None
