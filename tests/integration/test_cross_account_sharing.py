"""Design scenario 1, end to end with boto3 and the AWS CLI: a pipeline deployed in the test account
is shared through AWS RAM, read-only with dev and with execution rights with shared-services.

The organization starts with RAM sharing disabled, so dev's share arrives as an invitation that dev
accepts; the management account then enables sharing with the organization, and shared-services'
share is in force at once without any invitation. Both flows, one walkthrough.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import REGION, StratumServer, create_pg_database, drop_pg_database

DEFAULT_PERMISSION = "arn:aws:ram::aws:permission/AWSRAMDefaultPermissionSageMakerPipeline"
EXECUTION_PERMISSION = "arn:aws:ram::aws:permission/AWSRAMPermissionSageMakerPipelineAllowExecution"
BACKENDS = [b.strip() for b in os.environ.get("STRATUM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
DEFINITION = json.dumps({
    "Version": "2020-12-01", "Metadata": {},
    "Parameters": [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5}],
    "Steps": [{"Name": "Gate", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.Threshold"},
                        "RightValue": 0.3}],
        "IfSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "threshold reached"}}],
        "ElseSteps": []}}],
})


@pytest.fixture(scope="module", params=BACKENDS)
def org(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    """A server whose organization (management, dev, test, shared-services) has RAM sharing off."""
    spec = tmp_path_factory.mktemp("org-spec") / "organization.yaml"
    spec.write_text("organization:\n  ram_sharing: false\n"
                    "accounts:\n  - management\n  - dev\n  - test\n  - shared-services\n")
    url = create_pg_database() if request.param == "postgresql" else None
    srv = StratumServer(tmp_path_factory.mktemp(f"org-{request.param}"), url, ["--bootstrap", str(spec)],
                        backend=request.param)
    srv.start()
    yield srv
    srv.stop()
    if url:
        drop_pg_database(url)


def error_code(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    return str(exc.value.response["Error"]["Code"])


def cli_json(server: StratumServer, account: str, *args: str) -> dict[str, Any]:
    return json.loads(server.aws_cli(*args, account=account).stdout or "{}")


def cli_error(server: StratumServer, account: str, *args: str) -> str:
    out = server.aws_cli(*args, account=account, check=False)
    assert out.returncode != 0, out.stdout
    return out.stderr


def search_names(sm: Any, name: str, option: str = "CrossAccount") -> list[str]:
    """Search for pipelines named ``name``: with CrossAccount only other accounts' shared ones, with
    SameAccount only the caller's own."""
    results = sm.search(Resource="Pipeline", CrossAccountFilterOption=option, SearchExpression={
        "Filters": [{"Name": "PipelineName", "Operator": "Equals", "Value": name}]})["Results"]
    return [r["Pipeline"]["PipelineArn"] for r in results]


@pytest.mark.slow
def test_pipeline_shared_across_accounts(org: StratumServer) -> None:
    test_sm, dev_sm, ss_sm = (org.client("sagemaker", a) for a in ("test", "dev", "shared-services"))
    test_ram, dev_ram, ss_ram = (org.client("ram", a) for a in ("test", "dev", "shared-services"))
    dev_id, ss_id, test_id = (org.account_id(a) for a in ("dev", "shared-services", "test"))

    # --- The test account deploys the pipeline.
    name = f"shared-{uuid.uuid4().hex[:8]}"
    pipeline = test_sm.create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION,
                                       RoleArn=f"arn:aws:iam::{test_id}:role/pipeline-role")["PipelineArn"]
    assert pipeline == f"arn:aws:sagemaker:{REGION}:{test_id}:pipeline/{name}"

    # --- Share 1 (AWS CLI): read-only with dev. Sharing with the organization is off: invitation.
    dev_share = cli_json(org, "test", "ram", "create-resource-share", "--name", "pipeline-read-only",
                         "--resource-arns", pipeline, "--principals", dev_id,
                         "--permission-arns", DEFAULT_PERMISSION)["resourceShare"]["resourceShareArn"]
    assert error_code(dev_sm.describe_pipeline, PipelineName=pipeline) == "ResourceNotFound"

    # --- The management account enables sharing with the organization; share 2 needs no invitation.
    assert org.client("ram", "management").enable_sharing_with_aws_organization()["returnValue"] is True
    ss_share = test_ram.create_resource_share(name="pipeline-execution", resourceArns=[pipeline],
                                              principals=[ss_id], permissionArns=[EXECUTION_PERMISSION])[
        "resourceShare"]["resourceShareArn"]
    assert ss_ram.get_resource_share_invitations()["resourceShareInvitations"] == []
    associations = test_ram.get_resource_share_associations(associationType="PRINCIPAL",
                                                            resourceShareArns=[dev_share, ss_share])
    assert {(a["associatedEntity"], a["status"]) for a in associations["resourceShareAssociations"]} == {
        (dev_id, "ASSOCIATING"), (ss_id, "ASSOCIATED")}

    # --- dev accepts its invitation (AWS CLI).
    invitations = cli_json(org, "dev", "ram", "get-resource-share-invitations")["resourceShareInvitations"]
    assert [(i["resourceShareArn"], i["status"], i["senderAccountId"]) for i in invitations] == [
        (dev_share, "PENDING", test_id)]
    accepted = cli_json(org, "dev", "ram", "accept-resource-share-invitation", "--resource-share-invitation-arn",
                        invitations[0]["resourceShareInvitationArn"])
    assert accepted["resourceShareInvitation"]["status"] == "ACCEPTED"
    assert [s["resourceShareArn"] for s in dev_ram.get_resource_shares(
        resourceOwner="OTHER-ACCOUNTS")["resourceShares"]] == [dev_share]

    # --- dev reads the pipeline by ARN, but cannot run or change it.
    described = dev_sm.describe_pipeline(PipelineName=pipeline)
    assert described["PipelineArn"] == pipeline and described["PipelineName"] == name
    assert json.loads(described["PipelineDefinition"])["Steps"][0]["Name"] == "Gate"
    cli_described = cli_json(org, "dev", "sagemaker", "describe-pipeline", "--pipeline-name", pipeline)
    assert cli_described["PipelineArn"] == pipeline
    assert dev_sm.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"] == []
    assert error_code(dev_sm.start_pipeline_execution, PipelineName=pipeline) == "AccessDeniedException"
    assert "AccessDeniedException" in cli_error(org, "dev", "sagemaker", "start-pipeline-execution",
                                                "--pipeline-name", pipeline)
    assert error_code(dev_sm.list_pipeline_versions, PipelineName=pipeline) == "AccessDeniedException"
    # Update/Delete take a name only, and a name is always the caller's own pipeline.
    assert error_code(dev_sm.update_pipeline, PipelineName=pipeline, PipelineDisplayName="x") == \
        "ValidationException"
    assert error_code(dev_sm.update_pipeline, PipelineName=name, PipelineDisplayName="x") == "ResourceNotFound"
    assert error_code(dev_sm.delete_pipeline, PipelineName=name) == "ResourceNotFound"
    assert error_code(dev_sm.describe_pipeline, PipelineName=name) == "ResourceNotFound"
    assert search_names(dev_sm, name) == [pipeline]
    # A shared pipeline is found only when Search asks for other accounts' resources.
    assert search_names(dev_sm, name, "SameAccount") == []
    assert dev_sm.search(Resource="Pipeline", SearchExpression={"Filters": [
        {"Name": "PipelineName", "Operator": "Equals", "Value": name}]})["Results"] == []
    assert search_names(test_sm, name, "SameAccount") == [pipeline] and search_names(test_sm, name) == []

    # --- shared-services runs it by ARN, in the owner's account.
    first = ss_sm.start_pipeline_execution(PipelineName=pipeline,
                                           PipelineParameters=[{"Name": "Threshold", "Value": "0.9"}])[
        "PipelineExecutionArn"]
    assert first.startswith(pipeline + "/execution/")
    second = cli_json(org, "shared-services", "sagemaker", "start-pipeline-execution", "--pipeline-name",
                      pipeline)["PipelineExecutionArn"]
    assert second.startswith(pipeline + "/execution/")
    execution = ss_sm.describe_pipeline_execution(PipelineExecutionArn=first)
    assert execution["PipelineArn"] == pipeline
    assert execution["CreatedBy"]["IamIdentity"]["Arn"] == f"arn:aws:iam::{ss_id}:user/admin"
    params = ss_sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=first)["PipelineParameters"]
    assert {"Name": "Threshold", "Value": "0.9"} in params
    assert "Gate" in ss_sm.describe_pipeline_definition_for_execution(PipelineExecutionArn=first)[
        "PipelineDefinition"]
    assert "PipelineExecutionSteps" in ss_sm.list_pipeline_execution_steps(PipelineExecutionArn=first)
    found = ss_sm.search(Resource="PipelineExecution", CrossAccountFilterOption="CrossAccount", SearchExpression={
        "Filters": [{"Name": "PipelineArn", "Operator": "Equals", "Value": pipeline}]})["Results"]
    assert {r["PipelineExecution"]["PipelineExecutionArn"] for r in found} == {first, second}
    _stop(ss_sm, second)
    retry = _retry(ss_sm, first)

    # dev may look at those executions but not stop or retry them.
    assert dev_sm.describe_pipeline_execution(PipelineExecutionArn=first)["PipelineExecutionArn"] == first
    assert error_code(dev_sm.stop_pipeline_execution, PipelineExecutionArn=first,
                      ClientRequestToken=uuid.uuid4().hex) == "AccessDeniedException"
    if retry != "NotImplemented":
        assert error_code(dev_sm.retry_pipeline_execution, PipelineExecutionArn=first,
                          ClientRequestToken=uuid.uuid4().hex) == "AccessDeniedException"
    # Nor can shared-services touch what the share does not grant.
    assert error_code(ss_sm.update_pipeline_execution, PipelineExecutionArn=first,
                      PipelineExecutionDisplayName="x") == "AccessDeniedException"

    # --- The owner sees every execution the consumers started.
    owned = test_sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
    assert {e["PipelineExecutionArn"] for e in owned} >= {first, second}
    assert test_sm.describe_pipeline_execution(PipelineExecutionArn=second)["PipelineArn"] == pipeline

    # --- Revoking takes effect at once: removing the principal, then deleting the share.
    test_ram.disassociate_resource_share(resourceShareArn=ss_share, principals=[ss_id])
    assert error_code(ss_sm.describe_pipeline, PipelineName=pipeline) == "ResourceNotFound"
    assert error_code(ss_sm.start_pipeline_execution, PipelineName=pipeline) == "ResourceNotFound"
    assert error_code(ss_sm.describe_pipeline_execution, PipelineExecutionArn=first) == "ResourceNotFound"
    assert search_names(ss_sm, name) == []
    deleted = cli_json(org, "test", "ram", "delete-resource-share", "--resource-share-arn", dev_share)
    assert deleted["returnValue"] is True
    assert error_code(dev_sm.describe_pipeline, PipelineName=pipeline) == "ResourceNotFound"
    assert error_code(dev_sm.describe_pipeline_execution, PipelineExecutionArn=first) == "ResourceNotFound"
    assert search_names(dev_sm, name) == []
    assert dev_ram.get_resource_shares(resourceOwner="OTHER-ACCOUNTS")["resourceShares"] == []
    # The owner's pipeline is untouched.
    assert test_sm.describe_pipeline(PipelineName=name)["PipelineArn"] == pipeline


def _stop(sm: Any, execution: str) -> None:
    """Stop an execution through the share. An engine may have finished it already (the pipeline
    only fails), which SageMaker answers with ConflictException: either way the share allowed it."""
    try:
        sm.stop_pipeline_execution(PipelineExecutionArn=execution, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "ConflictException", exc.response
        status = sm.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionStatus"]
        assert status in ("Failed", "Succeeded", "Stopped")
        return
    status = sm.describe_pipeline_execution(PipelineExecutionArn=execution)["PipelineExecutionStatus"]
    assert status in ("Stopping", "Stopped")


def _retry(sm: Any, execution: str) -> str:
    """Retry through the share; returns the outcome ("ok", or the error code SageMaker gave when the
    execution is not in a retryable state). RetryPipelineExecution belongs to the execution engine."""
    try:
        sm.retry_pipeline_execution(PipelineExecutionArn=execution, ClientRequestToken=uuid.uuid4().hex)
    except ClientError as exc:
        code = str(exc.response["Error"]["Code"])
        assert code in ("NotImplemented", "ConflictException", "ValidationException"), exc.response
        return code
    return "ok"
