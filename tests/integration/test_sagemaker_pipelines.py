"""SageMaker pipeline control plane through boto3 (and one AWS CLI call): pipelines, versions,
executions, tags, Search, idempotency, pagination, validation and account isolation."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer


def _uid(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _token() -> str:
    return uuid.uuid4().hex  # 32 characters, the minimum ClientRequestToken length


def definition(parameters: list[dict[str, Any]] | None = None, steps: list[dict[str, Any]] | None = None,
               experiment: bool = True) -> str:
    doc: dict[str, Any] = {
        "Version": "2020-12-01",
        "Metadata": {},
        "Parameters": parameters if parameters is not None else [
            {"Name": "Message", "Type": "String", "DefaultValue": "stop here"},
            {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5},
            {"Name": "Epochs", "Type": "Integer", "DefaultValue": 3},
            {"Name": "Deploy", "Type": "Boolean", "DefaultValue": False},
        ],
        "Steps": steps if steps is not None else [
            {"Name": "Check", "Type": "Condition", "Arguments": {
                "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.Threshold"},
                                "RightValue": 0.3}],
                "IfSteps": [{"Name": "Stop", "Type": "Fail",
                             "Arguments": {"ErrorMessage": {"Get": "Parameters.Message"}}}],
                "ElseSteps": []}},
        ],
    }
    if experiment:
        doc["PipelineExperimentConfig"] = {"ExperimentName": {"Get": "Execution.PipelineName"},
                                           "TrialName": {"Get": "Execution.PipelineExecutionId"}}
    return json.dumps(doc)


def role(server: StratumServer, account: str = "dev") -> str:
    return f"arn:aws:iam::{server.account_id(account)}:role/pipeline-role"


def create(server: StratumServer, name: str | None = None, account: str = "dev", **kw: Any) -> tuple[str, str]:
    name = name or _uid()
    sm = server.client("sagemaker", account)
    kw.setdefault("PipelineDefinition", definition())
    arn = sm.create_pipeline(PipelineName=name, RoleArn=role(server, account), **kw)["PipelineArn"]
    return name, arn


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


# The engine runs executions: one that must stay Executing waits on a Callback step.
WAITING_STEPS = [{"Name": "Wait", "Type": "Callback", "Arguments": {}, "SqsQueueUrl": "https://sqs.local/q",
                  "OutputParameters": []}]


def wait_until_done(sm: Any, execution: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        d = sm.describe_pipeline_execution(PipelineExecutionArn=execution)
        if d["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped") or time.monotonic() > deadline:
            return d
        time.sleep(0.05)


def callback_token(sm: Any, execution: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for step in sm.list_pipeline_execution_steps(PipelineExecutionArn=execution)["PipelineExecutionSteps"]:
            token = step.get("Metadata", {}).get("Callback", {}).get("CallbackToken")
            if token:
                return str(token)
        assert time.monotonic() < deadline, "the Callback step never started"
        time.sleep(0.05)


# ------------------------------------------------------------------------------------------ pipelines
def test_create_and_describe_pipeline(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _uid("My-Pipeline")
    before = datetime.now(UTC) - timedelta(seconds=5)
    arn = sm.create_pipeline(
        PipelineName=name, PipelineDisplayName="Shown-Name", PipelineDescription="does things",
        PipelineDefinition=definition(), RoleArn=role(server), ParallelismConfiguration={"MaxParallelExecutionSteps": 4},
        Tags=[{"Key": "team", "Value": "blue"}])["PipelineArn"]
    account = server.account_id("dev")
    # The service lower-cases the name in the ARN.
    assert arn == f"arn:aws:sagemaker:{REGION}:{account}:pipeline/{name.lower()}"

    for ref in (name, arn, name.lower()):
        d = sm.describe_pipeline(PipelineName=ref)
        assert d["PipelineArn"] == arn
        assert d["PipelineName"] == name
        assert d["PipelineDisplayName"] == "Shown-Name"
        assert d["PipelineDescription"] == "does things"
        assert d["RoleArn"] == role(server)
        assert d["PipelineStatus"] == "Active"
        assert json.loads(d["PipelineDefinition"]) == json.loads(definition())
        assert d["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 4}
        assert d["CreationTime"] >= before and d["LastModifiedTime"] >= d["CreationTime"]
        assert "LastRunTime" not in d
        assert d["CreatedBy"]["IamIdentity"]["Arn"] == f"arn:aws:iam::{account}:user/admin"
        assert d["LastModifiedBy"]["IamIdentity"]["Arn"] == f"arn:aws:iam::{account}:user/admin"
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "blue"}]


def test_display_name_defaults_to_the_name(server: StratumServer) -> None:
    name, _ = create(server)
    assert server.client("sagemaker").describe_pipeline(PipelineName=name)["PipelineDisplayName"] == name


def test_duplicate_name_is_a_validation_error_the_sdk_recognises(server: StratumServer) -> None:
    name, _ = create(server)
    sm = server.client("sagemaker")
    for dup in (name, name.upper()):
        with pytest.raises(ClientError) as exc:
            sm.create_pipeline(PipelineName=dup, PipelineDefinition=definition(), RoleArn=role(server))
        code, message = error_of(exc)
        assert code == "ValidationException"
        # Both phrases the SageMaker Python SDK's Pipeline.upsert() has looked for.
        assert "already exists" in message and "Pipeline names must be unique within" in message


def test_create_is_idempotent_per_client_request_token(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, token = _uid(), _token()
    first = sm.create_pipeline(PipelineName=name, PipelineDefinition=definition(), RoleArn=role(server),
                               ClientRequestToken=token)["PipelineArn"]
    again = sm.create_pipeline(PipelineName=name, PipelineDefinition=definition(), RoleArn=role(server),
                               ClientRequestToken=token)["PipelineArn"]
    assert again == first
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=_uid(), PipelineDefinition=definition(), RoleArn=role(server),
                           ClientRequestToken=token)
    assert error_of(exc)[0] == "ConflictException"


@pytest.mark.parametrize(("text", "expected"), [
    ("{not json", "not valid JSON"),
    (json.dumps({"Version": "2020-12-01", "Steps": [{"Name": "A", "Type": "Teleport", "Arguments": {}}]}),
     "unsupported Type 'Teleport'"),
    (json.dumps({"Version": "2020-12-01", "Steps": [
        {"Name": "A", "Type": "Fail", "Arguments": {}, "DependsOn": ["B"]},
        {"Name": "B", "Type": "Fail", "Arguments": {}, "DependsOn": ["A"]}]}), "cycle"),
    (json.dumps({"Version": "2020-12-01", "Steps": [
        {"Name": "A", "Type": "Fail", "Arguments": {"ErrorMessage": {"Get": "Parameters.Nope"}}}]}),
     "references parameter 'Nope'"),
    (json.dumps({"Version": "2020-12-01", "Steps": [
        {"Name": "A", "Type": "Fail", "Arguments": {}}, {"Name": "A", "Type": "Fail", "Arguments": {}}]}),
     "duplicate step name 'A'"),
])
def test_invalid_definitions_are_rejected(server: StratumServer, text: str, expected: str) -> None:
    sm = server.client("sagemaker")
    name = _uid()
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=name, PipelineDefinition=text, RoleArn=role(server))
    code, message = error_of(exc)
    assert code == "ValidationException" and expected in message
    with pytest.raises(ClientError) as exc:
        sm.describe_pipeline(PipelineName=name)
    assert error_of(exc)[0] == "ResourceNotFound"
    # UpdatePipeline validates the same way and leaves the pipeline untouched.
    good, _ = create(server)
    with pytest.raises(ClientError) as exc:
        sm.update_pipeline(PipelineName=good, PipelineDefinition=text)
    assert error_of(exc)[0] == "ValidationException" and expected in error_of(exc)[1]
    assert sm.list_pipeline_versions(PipelineName=good)["PipelineVersionSummaries"][0]["PipelineVersionId"] == 1


def test_definition_source_is_required_and_exclusive(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=_uid(), RoleArn=role(server))
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=_uid(), RoleArn=role(server), PipelineDefinition=definition(),
                           PipelineDefinitionS3Location={"Bucket": "abc", "ObjectKey": "k"})
    assert error_of(exc)[0] == "ValidationException"


def test_missing_pipeline_is_resource_not_found(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _uid()
    arn = f"arn:aws:sagemaker:{REGION}:{server.account_id('dev')}:pipeline/{name}"
    for call in (lambda: sm.describe_pipeline(PipelineName=name),
                 lambda: sm.start_pipeline_execution(PipelineName=name),
                 lambda: sm.list_pipeline_executions(PipelineName=name),
                 lambda: sm.list_pipeline_versions(PipelineName=name),
                 lambda: sm.update_pipeline(PipelineName=name, PipelineDescription="x"),
                 lambda: sm.delete_pipeline(PipelineName=name)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("ResourceNotFound", f"Pipeline '{arn}' does not exist.")


def test_update_makes_versions(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server)
    v2_def = definition(parameters=[{"Name": "Message", "Type": "String", "DefaultValue": "v2"}],
                        steps=[{"Name": "Stop", "Type": "Fail",
                                "Arguments": {"ErrorMessage": {"Get": "Parameters.Message"}}}])
    out = sm.update_pipeline(PipelineName=name, PipelineDefinition=v2_def, PipelineDescription="second",
                             ParallelismConfiguration={"MaxParallelExecutionSteps": 2})
    assert out["PipelineArn"] == arn and out["PipelineVersionId"] == 2
    latest = sm.describe_pipeline(PipelineName=name)
    assert json.loads(latest["PipelineDefinition"]) == json.loads(v2_def)
    assert latest["PipelineDescription"] == "second"
    assert latest["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 2}
    first = sm.describe_pipeline(PipelineName=name, PipelineVersionId=1)
    assert json.loads(first["PipelineDefinition"]) == json.loads(definition())

    # Without a definition: attributes change, no new version.
    out = sm.update_pipeline(PipelineName=name, PipelineDisplayName="Renamed")
    assert out["PipelineVersionId"] == 2
    assert sm.describe_pipeline(PipelineName=name)["PipelineDisplayName"] == "Renamed"

    versions = sm.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"]
    assert [v["PipelineVersionId"] for v in versions] == [2, 1]
    assert all(v["PipelineArn"] == arn for v in versions)
    asc = sm.list_pipeline_versions(PipelineName=name, SortOrder="Ascending", MaxResults=1)
    assert [v["PipelineVersionId"] for v in asc["PipelineVersionSummaries"]] == [1]
    nxt = sm.list_pipeline_versions(PipelineName=name, SortOrder="Ascending", MaxResults=1,
                                    NextToken=asc["NextToken"])
    assert [v["PipelineVersionId"] for v in nxt["PipelineVersionSummaries"]] == [2]
    assert "NextToken" not in nxt

    sm.update_pipeline_version(PipelineArn=arn, PipelineVersionId=1, PipelineVersionDisplayName="first-one",
                               PipelineVersionDescription="the original")
    d1 = sm.describe_pipeline(PipelineName=name, PipelineVersionId=1)
    assert d1["PipelineVersionDisplayName"] == "first-one"
    assert d1["PipelineVersionDescription"] == "the original"

    with pytest.raises(ClientError) as exc:
        sm.describe_pipeline(PipelineName=name, PipelineVersionId=99)
    code, message = error_of(exc)
    assert code == "ResourceNotFound" and "99" in message


def test_version_aliases(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server, PipelineVersionAliases=["stable"])
    v2 = definition(parameters=[], steps=[{"Name": "Stop", "Type": "Fail", "Arguments": {}}], experiment=False)
    assert sm.update_pipeline(PipelineName=name, PipelineDefinition=v2,
                              PipelineVersionAliases=["candidate"])["PipelineVersionId"] == 2
    assert sm.describe_pipeline(PipelineName=name, PipelineVersionAlias="stable")["PipelineVersionAliases"] == [
        "stable"]
    assert json.loads(sm.describe_pipeline(PipelineName=name, PipelineVersionAlias="candidate")
                      ["PipelineDefinition"]) == json.loads(v2)
    execution = sm.start_pipeline_execution(PipelineName=name, PipelineVersionAlias="stable")["PipelineExecutionArn"]
    assert sm.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineVersionId"] == 1
    sm.start_pipeline_execution(PipelineName=name)
    by_alias = sm.list_pipeline_executions(PipelineName=name, PipelineVersionAlias="stable")
    assert [e["PipelineExecutionArn"] for e in by_alias["PipelineExecutionSummaries"]] == [execution]
    # An alias names one version at a time: move it by removing it first.
    with pytest.raises(ClientError) as exc:
        sm.update_pipeline_version(PipelineArn=arn, PipelineVersionId=2,
                                   PipelineVersionAliasOperations={"Add": ["stable"]})
    assert error_of(exc)[0] == "ConflictException"
    sm.update_pipeline_version(PipelineArn=arn, PipelineVersionId=1, PipelineVersionAliasOperations={"Remove": ["stable"]})
    sm.update_pipeline_version(PipelineArn=arn, PipelineVersionId=2, PipelineVersionAliasOperations={"Add": ["stable"]})
    assert sorted(sm.describe_pipeline(PipelineName=name, PipelineVersionAlias="stable")["PipelineVersionAliases"]) == [
        "candidate", "stable"]
    with pytest.raises(ClientError) as exc:
        sm.describe_pipeline(PipelineName=name, PipelineVersionAlias="nope")
    assert error_of(exc)[0] == "ResourceNotFound"


def test_concurrent_updates_make_distinct_versions(server: StratumServer) -> None:
    name, _ = create(server)
    clients = [server.client("sagemaker") for _ in range(6)]

    def update(sm: Any) -> int:
        return int(sm.update_pipeline(PipelineName=name, PipelineDefinition=definition())["PipelineVersionId"])

    with ThreadPoolExecutor(max_workers=6) as pool:
        versions = sorted(pool.map(update, clients))
    assert versions == [2, 3, 4, 5, 6, 7]


def test_delete_pipeline(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server)
    sm.start_pipeline_execution(PipelineName=name)
    token = _token()
    assert sm.delete_pipeline(PipelineName=name, ClientRequestToken=token)["PipelineArn"] == arn
    # The same request retried answers the same; a new one finds nothing.
    assert sm.delete_pipeline(PipelineName=name, ClientRequestToken=token)["PipelineArn"] == arn
    with pytest.raises(ClientError) as exc:
        sm.delete_pipeline(PipelineName=name)
    assert error_of(exc)[0] == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        sm.describe_pipeline(PipelineName=name)
    assert error_of(exc)[0] == "ResourceNotFound"
    # The name is free again, with a fresh history.
    create(server, name)
    assert sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"] == []
    assert sm.list_tags(ResourceArn=arn)["Tags"] == []


def test_list_pipelines_filters_sorts_and_pages(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    prefix = _uid("lst")
    names = [f"{prefix}-{i}" for i in range(5)]
    start = datetime.now(UTC) - timedelta(seconds=1)
    for n in names:
        create(server, n)
        time.sleep(0.01)
    listed = sm.list_pipelines(PipelineNamePrefix=prefix, SortBy="Name", SortOrder="Ascending", MaxResults=100)
    assert [p["PipelineName"] for p in listed["PipelineSummaries"]] == names
    summary = listed["PipelineSummaries"][0]
    assert set(summary) >= {"PipelineArn", "PipelineName", "PipelineDisplayName", "RoleArn", "CreationTime",
                            "LastModifiedTime"}
    # Default order: newest first.
    newest = sm.list_pipelines(PipelineNamePrefix=prefix)["PipelineSummaries"]
    assert [p["PipelineName"] for p in newest] == list(reversed(names))

    seen: list[str] = []
    kwargs: dict[str, Any] = {"PipelineNamePrefix": prefix, "SortBy": "Name", "SortOrder": "Descending",
                              "MaxResults": 2}
    pages = 0
    while True:
        page = sm.list_pipelines(**kwargs)
        pages += 1
        seen += [p["PipelineName"] for p in page["PipelineSummaries"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert seen == list(reversed(names)) and pages == 3

    paginated = [p["PipelineName"] for page in sm.get_paginator("list_pipelines").paginate(
        PipelineNamePrefix=prefix, PaginationConfig={"PageSize": 2}) for p in page["PipelineSummaries"]]
    assert sorted(paginated) == names

    assert sm.list_pipelines(PipelineNamePrefix=prefix, CreatedBefore=start)["PipelineSummaries"] == []
    assert len(sm.list_pipelines(PipelineNamePrefix=prefix, CreatedAfter=start,
                                 MaxResults=100)["PipelineSummaries"]) == 5
    with pytest.raises(ClientError) as exc:
        sm.list_pipelines(PipelineNamePrefix=prefix, NextToken="garbage")
    assert error_of(exc)[0] == "ValidationException"


# ----------------------------------------------------------------------------------------- executions
def test_start_and_describe_execution(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server)
    out = sm.start_pipeline_execution(
        PipelineName=name, PipelineExecutionDisplayName="first-run", PipelineExecutionDescription="try it",
        PipelineParameters=[{"Name": "Threshold", "Value": "0.75"}, {"Name": "Deploy", "Value": "True"}])
    execution = out["PipelineExecutionArn"]
    exec_id = execution.rsplit("/", 1)[1]
    assert execution.startswith(f"{arn}/execution/") and len(exec_id) == 12 and exec_id == exec_id.lower()

    d = wait_until_done(sm, execution)
    assert d["PipelineArn"] == arn
    assert d["PipelineExecutionArn"] == execution
    # Threshold 0.75 >= 0.3: the Fail step with the Message parameter ends the execution.
    assert d["PipelineExecutionStatus"] == "Failed" and d["FailureReason"] == "stop here"
    assert d["PipelineExecutionDisplayName"] == "first-run"
    assert d["PipelineExecutionDescription"] == "try it"
    assert d["PipelineVersionId"] == 1
    assert d["PipelineExperimentConfig"] == {"ExperimentName": name, "TrialName": exec_id}
    assert d["CreatedBy"]["IamIdentity"]["Arn"].endswith(":user/admin")

    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution)["PipelineParameters"]
    assert params == [{"Name": "Message", "Value": "stop here"}, {"Name": "Threshold", "Value": "0.75"},
                      {"Name": "Epochs", "Value": "3"}, {"Name": "Deploy", "Value": "true"}]
    page = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution, MaxResults=3)
    assert len(page["PipelineParameters"]) == 3 and page["NextToken"]
    rest = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution, MaxResults=3,
                                                     NextToken=page["NextToken"])
    assert rest["PipelineParameters"] == [{"Name": "Deploy", "Value": "true"}]

    defn = sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=execution)
    assert json.loads(defn["PipelineDefinition"]) == json.loads(definition())
    assert "CreationTime" in defn
    assert [s["StepName"] for s in sm.list_pipeline_execution_steps(
        PipelineExecutionArn=execution)["PipelineExecutionSteps"]] == ["Stop", "Check"]

    described = sm.describe_pipeline(PipelineName=name)
    assert described["LastRunTime"] >= described["CreationTime"]
    summary = sm.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"][0]
    assert "LastExecutionTime" in summary
    versions = sm.list_pipeline_versions(PipelineName=name)["PipelineVersionSummaries"]
    assert versions[0]["LastExecutionPipelineExecutionArn"] == execution


def test_default_execution_display_name(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = create(server)
    execution = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    shown = sm.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionDisplayName"]
    assert shown.startswith("execution-") and shown[len("execution-"):].isdigit()


@pytest.mark.parametrize(("params", "expected"), [
    ([{"Name": "Nope", "Value": "1"}], "Parameter 'Nope' is not defined"),
    ([{"Name": "Epochs", "Value": "three"}], "is not a valid Integer"),
    ([{"Name": "Threshold", "Value": "high"}], "is not a valid Float"),
    ([{"Name": "Deploy", "Value": "maybe"}], "is not a valid Boolean"),
    ([{"Name": "Epochs", "Value": "1"}, {"Name": "Epochs", "Value": "2"}], "more than once"),
])
def test_start_with_bad_parameters(server: StratumServer, params: list[dict[str, str]], expected: str) -> None:
    sm = server.client("sagemaker")
    name, _ = create(server)
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name, PipelineParameters=params)
    code, message = error_of(exc)
    assert code == "ValidationException" and expected in message
    assert sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"] == []


def test_required_parameter_must_be_supplied(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = create(server, PipelineDefinition=definition(parameters=[
        {"Name": "Message", "Type": "String"}, {"Name": "Threshold", "Type": "Float", "DefaultValue": 1.0}]))
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name)
    assert error_of(exc)[0] == "ValidationException" and "'Message'" in error_of(exc)[1]
    ok = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[{"Name": "Message", "Value": "hi"}])
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=ok["PipelineExecutionArn"])
    assert params["PipelineParameters"] == [{"Name": "Message", "Value": "hi"}, {"Name": "Threshold", "Value": "1.0"}]


def test_start_is_idempotent_per_client_request_token(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = create(server)
    token = _token()
    first = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"]
    again = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token)["PipelineExecutionArn"]
    assert again == first
    assert len(sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]) == 1
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=token,
                                    PipelineParameters=[{"Name": "Epochs", "Value": "9"}])
    assert error_of(exc)[0] == "ConflictException"


def test_execution_keeps_its_pipeline_version(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server)
    first = sm.start_pipeline_execution(PipelineName=arn)["PipelineExecutionArn"]
    v2 = definition(parameters=[{"Name": "Only", "Type": "String", "DefaultValue": "x"}],
                    steps=[{"Name": "Stop", "Type": "Fail", "Arguments": {}}], experiment=False)
    assert sm.update_pipeline(PipelineName=name, PipelineDefinition=v2)["PipelineVersionId"] == 2
    second = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    pinned = sm.start_pipeline_execution(PipelineName=name, PipelineVersionId=1)["PipelineExecutionArn"]

    assert json.loads(sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=first)
                      ["PipelineDefinition"]) == json.loads(definition())
    assert json.loads(sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=second)
                      ["PipelineDefinition"]) == json.loads(v2)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=second)["PipelineVersionId"] == 2
    assert "PipelineExperimentConfig" not in sm.describe_pipeline_execution(PipelineExecutionArn=second)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=pinned)["PipelineVersionId"] == 1
    assert sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=second)["PipelineParameters"] == [
        {"Name": "Only", "Value": "x"}]
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name, PipelineVersionId=7)
    assert error_of(exc)[0] == "ResourceNotFound"


def test_list_executions_sorts_filters_and_pages(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = create(server)
    before = datetime.now(UTC) - timedelta(seconds=1)
    arns = []
    for _ in range(5):
        arns.append(sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"])
        time.sleep(0.01)
    newest_first = [e["PipelineExecutionArn"] for e in
                    sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]]
    assert newest_first == list(reversed(arns))
    summary = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"][0]
    assert summary["PipelineExecutionStatus"] in ("Executing", "Failed") and "StartTime" in summary

    collected: list[str] = []
    kwargs: dict[str, Any] = {"PipelineName": name, "SortOrder": "Ascending", "MaxResults": 2}
    while True:
        page = sm.list_pipeline_executions(**kwargs)
        collected += [e["PipelineExecutionArn"] for e in page["PipelineExecutionSummaries"]]
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert collected == arns

    by_arn = [e["PipelineExecutionArn"] for e in sm.list_pipeline_executions(
        PipelineName=name, SortBy="PipelineExecutionArn", SortOrder="Ascending")["PipelineExecutionSummaries"]]
    assert by_arn == sorted(arns)
    assert sm.list_pipeline_executions(PipelineName=name, CreatedBefore=before)["PipelineExecutionSummaries"] == []
    assert len(sm.list_pipeline_executions(PipelineName=name, CreatedAfter=before)
               ["PipelineExecutionSummaries"]) == 5


def test_update_and_stop_execution(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, _ = create(server, PipelineDefinition=definition(steps=WAITING_STEPS))
    execution = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    token = callback_token(sm, execution)
    assert sm.update_pipeline_execution(
        PipelineExecutionArn=execution, PipelineExecutionDisplayName="renamed",
        PipelineExecutionDescription="new words",
        ParallelismConfiguration={"MaxParallelExecutionSteps": 7})["PipelineExecutionArn"] == execution
    d = sm.describe_pipeline_execution(PipelineExecutionArn=execution)
    assert d["PipelineExecutionDisplayName"] == "renamed"
    assert d["PipelineExecutionDescription"] == "new words"
    assert d["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 7}

    assert sm.stop_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionArn"] == execution
    # A waiting Callback step keeps the execution Stopping until its consumer answers (as in SageMaker).
    assert sm.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionStatus"] == "Stopping"
    sm.send_pipeline_execution_step_failure(CallbackToken=token, FailureReason="stopped")
    assert wait_until_done(sm, execution)["PipelineExecutionStatus"] == "Stopped"
    assert sm.stop_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionArn"] == execution
    listed = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
    assert listed[0]["PipelineExecutionStatus"] == "Stopped"


def test_parallelism_and_selective_execution_are_recorded(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server)
    source = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    selective = {"SourcePipelineExecutionArn": source, "SelectedSteps": [{"StepName": "Stop"}]}
    execution = sm.start_pipeline_execution(
        PipelineName=name, ParallelismConfiguration={"MaxParallelExecutionSteps": 3},
        SelectiveExecutionConfig=selective)["PipelineExecutionArn"]
    d = sm.describe_pipeline_execution(PipelineExecutionArn=execution)
    assert d["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 3}
    assert d["SelectiveExecutionConfig"] == selective
    with pytest.raises(ClientError) as exc:
        sm.start_pipeline_execution(PipelineName=name, SelectiveExecutionConfig={
            "SourcePipelineExecutionArn": source, "SelectedSteps": [{"StepName": "NoSuchStep"}]})
    assert error_of(exc)[0] == "ValidationException" and "NoSuchStep" in error_of(exc)[1]


def test_missing_execution_is_resource_not_found(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server)
    missing = f"{arn}/execution/zzzzzzzzzzzz"
    for call in (lambda: sm.describe_pipeline_execution(PipelineExecutionArn=missing),
                 lambda: sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=missing),
                 lambda: sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=missing),
                 lambda: sm.list_pipeline_execution_steps(PipelineExecutionArn=missing),
                 lambda: sm.stop_pipeline_execution(PipelineExecutionArn=missing),
                 lambda: sm.update_pipeline_execution(PipelineExecutionArn=missing,
                                                      PipelineExecutionDescription="x")):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc) == ("ResourceNotFound", f"Pipeline execution '{missing}' does not exist.")


# ----------------------------------------------------------------------------------------------- tags
def test_tags_on_pipelines_and_executions(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server, Tags=[{"Key": "a", "Value": "1"}])
    execution = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    for resource in (arn, execution):
        sm.add_tags(ResourceArn=resource, Tags=[{"Key": "b", "Value": "2"}, {"Key": "a", "Value": "one"}])
        tags = {t["Key"]: t["Value"] for t in sm.list_tags(ResourceArn=resource)["Tags"]}
        assert tags == ({"a": "one", "b": "2"})
        sm.delete_tags(ResourceArn=resource, TagKeys=["a", "not-there"])
        assert sm.list_tags(ResourceArn=resource)["Tags"] == [{"Key": "b", "Value": "2"}]
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": "aws:reserved", "Value": "x"}])
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.add_tags(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.list_tags(ResourceArn=arn + "-missing")
    assert error_of(exc)[0] == "ValidationException"


# --------------------------------------------------------------------------------------------- search
def _search(sm: Any, resource: str, **expression: Any) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"Resource": resource, "MaxResults": 100}
    if expression:
        kwargs["SearchExpression"] = expression
    return [r[resource] for r in sm.search(**kwargs)["Results"]]


def test_search_pipelines(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    tag = _uid("srch")
    _, a_arn = create(server, f"{tag}-alpha", PipelineDescription="the Alpha one",
                      Tags=[{"Key": "suite", "Value": tag}, {"Key": "tier", "Value": "gold"}])
    _, b_arn = create(server, f"{tag}-beta", Tags=[{"Key": "suite", "Value": tag}, {"Key": "tier", "Value": "silver"}])
    mine = {"Name": "Tags.suite", "Operator": "Equals", "Value": tag}

    found = _search(sm, "Pipeline", Filters=[mine])
    assert {p["PipelineArn"] for p in found} == {a_arn, b_arn}
    record = next(p for p in found if p["PipelineArn"] == a_arn)
    assert record["PipelineName"] == f"{tag}-alpha" and record["PipelineStatus"] == "Active"
    assert {"Key": "tier", "Value": "gold"} in record["Tags"]

    assert [p["PipelineArn"] for p in _search(sm, "Pipeline", Filters=[
        mine, {"Name": "Tags.tier", "Value": "gold"}])] == [a_arn]
    assert [p["PipelineArn"] for p in _search(sm, "Pipeline", Filters=[
        mine, {"Name": "PipelineDescription", "Operator": "Contains", "Value": "alpha"}])] == [a_arn]
    assert [p["PipelineArn"] for p in _search(sm, "Pipeline", Filters=[
        mine, {"Name": "PipelineDescription", "Operator": "NotExists"}])] == [b_arn]
    assert [p["PipelineArn"] for p in _search(sm, "Pipeline", Filters=[
        mine, {"Name": "PipelineName", "Operator": "NotEquals", "Value": f"{tag}-alpha"}])] == [b_arn]
    assert {p["PipelineArn"] for p in _search(sm, "Pipeline", Filters=[
        mine, {"Name": "PipelineName", "Operator": "In", "Value": f"{tag}-alpha,{tag}-beta,other"}])} == {a_arn, b_arn}
    assert {p["PipelineArn"] for p in _search(sm, "Pipeline", Filters=[
        mine, {"Name": "CreationTime", "Operator": "GreaterThan",
               "Value": (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")}])} == {a_arn, b_arn}
    assert _search(sm, "Pipeline", Filters=[
        mine, {"Name": "CreationTime", "Operator": "LessThan", "Value": "2001-01-01T00:00:00"}]) == []
    either = _search(sm, "Pipeline", Filters=[mine], SubExpressions=[
        {"Filters": [{"Name": "Tags.tier", "Value": "gold"}, {"Name": "Tags.tier", "Value": "silver"}],
         "Operator": "Or"}])
    assert len(either) == 2

    ordered = sm.search(Resource="Pipeline", SearchExpression={"Filters": [mine]}, SortBy="PipelineName",
                        SortOrder="Ascending", MaxResults=1)
    assert [r["Pipeline"]["PipelineArn"] for r in ordered["Results"]] == [a_arn]
    rest = sm.search(Resource="Pipeline", SearchExpression={"Filters": [mine]}, SortBy="PipelineName",
                     SortOrder="Ascending", MaxResults=1, NextToken=ordered["NextToken"])
    assert [r["Pipeline"]["PipelineArn"] for r in rest["Results"]] == [b_arn]

    with pytest.raises(ClientError) as exc:
        _search(sm, "Pipeline", Filters=[{"Name": "PipelineName", "Operator": "GreaterThan", "Value": "a"}])
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        _search(sm, "Pipeline", Filters=[{"Name": "NoSuchProperty", "Value": "a"}])
    assert error_of(exc)[0] == "ValidationException"


def test_search_pipeline_executions(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name, arn = create(server, PipelineDefinition=definition(steps=WAITING_STEPS))
    low = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[
        {"Name": "Epochs", "Value": "1"}])["PipelineExecutionArn"]
    high = sm.start_pipeline_execution(PipelineName=name, PipelineParameters=[
        {"Name": "Epochs", "Value": "50"}])["PipelineExecutionArn"]
    low_token = callback_token(sm, low)
    sm.stop_pipeline_execution(PipelineExecutionArn=low)
    sm.send_pipeline_execution_step_failure(CallbackToken=low_token, FailureReason="stopped")
    assert wait_until_done(sm, low)["PipelineExecutionStatus"] == "Stopped"
    ours = {"Name": "PipelineArn", "Operator": "Equals", "Value": arn}

    found = _search(sm, "PipelineExecution", Filters=[ours])
    assert {e["PipelineExecutionArn"] for e in found} == {low, high}
    rec = next(e for e in found if e["PipelineExecutionArn"] == high)
    assert {"Name": "Epochs", "Value": "50"} in rec["PipelineParameters"]
    assert rec["PipelineVersionId"] == 1 and rec["PipelineExecutionStatus"] == "Executing"

    assert [e["PipelineExecutionArn"] for e in _search(sm, "PipelineExecution", Filters=[
        ours, {"Name": "PipelineExecutionStatus", "Value": "Stopped"}])] == [low]
    nested = _search(sm, "PipelineExecution", Filters=[ours], NestedFilters=[{
        "NestedPropertyName": "PipelineParameters",
        "Filters": [{"Name": "PipelineParameters.Name", "Value": "Epochs"},
                    {"Name": "PipelineParameters.Value", "Value": "50"}]}])
    assert [e["PipelineExecutionArn"] for e in nested] == [high]
    # Name and Value must match on the same parameter.
    assert _search(sm, "PipelineExecution", Filters=[ours], NestedFilters=[{
        "NestedPropertyName": "PipelineParameters",
        "Filters": [{"Name": "PipelineParameters.Name", "Value": "Message"},
                    {"Name": "PipelineParameters.Value", "Value": "50"}]}]) == []
    versions = _search(sm, "PipelineVersion", Filters=[ours])
    assert [v["PipelineVersionId"] for v in versions] == [1]
    assert versions[0]["LastExecutedPipelineExecutionArn"] == high


# -------------------------------------------------------------------------------------- isolation/authz
def test_accounts_are_isolated(server: StratumServer) -> None:
    dev = server.client("sagemaker", "dev")
    other = server.client("sagemaker", "test")
    name, arn = create(server)
    execution = dev.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]

    with pytest.raises(ClientError) as exc:
        other.describe_pipeline(PipelineName=name)
    code, message = error_of(exc)
    assert code == "ResourceNotFound" and server.account_id("test") in message
    for call in (lambda: other.describe_pipeline(PipelineName=arn),
                 lambda: other.start_pipeline_execution(PipelineName=arn),
                 lambda: other.describe_pipeline_execution(PipelineExecutionArn=execution),
                 lambda: other.stop_pipeline_execution(PipelineExecutionArn=execution)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error_of(exc)[0] == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        other.add_tags(ResourceArn=arn, Tags=[{"Key": "x", "Value": "y"}])
    assert error_of(exc)[0] == "ValidationException"
    assert arn not in [p["PipelineArn"] for p in other.list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]]
    assert _search(other, "Pipeline", Filters=[{"Name": "PipelineName", "Value": name}]) == []

    # The same name in another account is a different pipeline.
    _, other_arn = create(server, name, account="test")
    assert other_arn != arn and server.account_id("test") in other_arn
    assert dev.describe_pipeline(PipelineName=name)["PipelineArn"] == arn
    assert dev.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"][0][
        "PipelineExecutionArn"] == execution
    assert other.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"] == []


def test_permissions_and_resource_tag_conditions(server: StratumServer) -> None:
    iam = server.client("iam")
    user = _uid("sm-user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="blue-only", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sagemaker:DescribePipeline", "sagemaker:StartPipelineExecution"],
             "Resource": "*", "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}}}]}))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    sm = server.client("sagemaker", aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    blue, _ = create(server, Tags=[{"Key": "team", "Value": "blue"}])
    red, _ = create(server, Tags=[{"Key": "team", "Value": "red"}])
    assert sm.describe_pipeline(PipelineName=blue)["PipelineName"] == blue
    sm.start_pipeline_execution(PipelineName=blue)
    with pytest.raises(ClientError) as exc:
        sm.describe_pipeline(PipelineName=red)
    code, message = error_of(exc)
    assert code == "AccessDeniedException" and "sagemaker:DescribePipeline" in message
    # A missing pipeline is not revealed to a caller without the permission.
    with pytest.raises(ClientError) as exc:
        sm.describe_pipeline(PipelineName=_uid())
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        sm.create_pipeline(PipelineName=_uid(), PipelineDefinition=definition(), RoleArn=role(server))
    assert error_of(exc)[0] == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        sm.list_pipelines()
    assert error_of(exc)[0] == "AccessDeniedException"


# ----------------------------------------------------------------------------------------- S3 and CLI
def test_definition_from_s3(server: StratumServer) -> None:
    s3 = server.client("s3")
    bucket = _uid("defs")
    try:
        s3.create_bucket(Bucket=bucket)
    except ClientError as exc:  # the S3 service may not be part of this build yet
        pytest.skip(f"S3 not available: {exc}")
    s3.put_object(Bucket=bucket, Key="pipelines/def.json", Body=definition().encode())
    sm = server.client("sagemaker")
    name = _uid()
    sm.create_pipeline(PipelineName=name, RoleArn=role(server),
                       PipelineDefinitionS3Location={"Bucket": bucket, "ObjectKey": "pipelines/def.json"})
    assert json.loads(sm.describe_pipeline(PipelineName=name)["PipelineDefinition"]) == json.loads(definition())
    s3.put_object(Bucket=bucket, Key="pipelines/bad.json", Body=b"{oops")
    with pytest.raises(ClientError) as exc:
        sm.update_pipeline(PipelineName=name,
                           PipelineDefinitionS3Location={"Bucket": bucket, "ObjectKey": "pipelines/bad.json"})
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.update_pipeline(PipelineName=name,
                           PipelineDefinitionS3Location={"Bucket": bucket, "ObjectKey": "pipelines/none.json"})
    assert error_of(exc)[0] == "ValidationException" and "does not exist" in error_of(exc)[1]


def test_aws_cli_list_pipelines(server: StratumServer) -> None:
    name, arn = create(server)
    out = server.aws_cli("sagemaker", "list-pipelines", "--pipeline-name-prefix", name, "--output", "json")
    summaries = json.loads(out.stdout)["PipelineSummaries"]
    assert [s["PipelineArn"] for s in summaries] == [arn]
    described = json.loads(server.aws_cli("sagemaker", "describe-pipeline", "--pipeline-name", name).stdout)
    assert described["PipelineStatus"] == "Active"
