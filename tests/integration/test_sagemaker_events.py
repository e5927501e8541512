"""SageMaker's own events through EventBridge: every pipeline execution and step status change, and
every job status change, is an event of the account's default bus, in the documented shape and in
order; a rule on a failed execution starts another pipeline with the failed execution's ARN (boto3
against a real server)."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import select
from stratum_testing import StratumServer
from test_events_rules import _wait
from test_jobs_support import processing_request, wait_job

from stratum.services.events.tables import events_deliveries
from stratum.services.sagemaker.registry.tables import sagemaker_registry_events as outbox_t
from stratum.store.db import Database

STATUS = "SageMaker Model Building Pipeline Execution Status Change"
STEP = "SageMaker Model Building Pipeline Execution Step Status Change"


def _definition(threshold: float) -> str:
    # 0.9: the Gate's condition is false and the execution succeeds; 0.1: the Stop step fails it.
    return json.dumps({"Version": "2020-12-01", "Parameters": [
        {"Name": "FailedExecution", "Type": "String", "DefaultValue": "none"}], "Steps": [
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": 0.5, "RightValue": threshold}],
            "IfSteps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "gate closed"}}],
            "ElseSteps": []}}]})


def _events(server: StratumServer, resource_arn: str) -> list[Any]:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            rows = conn.execute(select(outbox_t).order_by(outbox_t.c.event_id)).all()
    finally:
        db.dispose()
    return [r for r in rows if r.source == "aws.sagemaker" and resource_arn in r.resources]


def _deliveries(server: StratumServer, rule_arn: str) -> list[Any]:
    db = Database(server.database_url or f"sqlite:///{server.data_dir / 'stratum.db'}")
    try:
        with db.read() as conn:
            return list(conn.execute(select(events_deliveries).where(events_deliveries.c.rule_arn == rule_arn)))
    finally:
        db.dispose()


def test_execution_and_step_events_in_order(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = f"events-{uuid.uuid4().hex[:6]}"
    role = f"arn:aws:iam::{server.account_id('dev')}:role/events-pipeline"
    pipeline_arn = sm.create_pipeline(PipelineName=name, RoleArn=role, PipelineDefinition=_definition(0.1),
                                      PipelineDescription="fails")["PipelineArn"]
    arn = sm.start_pipeline_execution(PipelineName=name, PipelineExecutionDisplayName="shown",
                                      PipelineExecutionDescription="why")["PipelineExecutionArn"]
    _wait(lambda: sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Failed",
          what="the execution to fail")
    events = _wait(lambda: [e for e in _events(server, arn)] if len(_events(server, arn)) >= 4 else None,
                   what="the events")
    flow = [(e.detail_type, e.detail.get("stepName"),
             e.detail.get("currentStepStatus") or e.detail.get("currentPipelineExecutionStatus")) for e in events]
    assert flow == [(STATUS, None, "Executing"), (STEP, "Gate", "Succeeded"), (STEP, "Stop", "Failed"),
                    (STATUS, None, "Failed")], flow
    first, step, failed, last = events
    assert first.resources == [pipeline_arn, arn]
    assert first.detail == {"pipelineExecutionDisplayName": "shown", "currentPipelineExecutionStatus": "Executing",
                            "executionStartTime": first.detail["executionStartTime"],
                            "pipelineExecutionDescription": "why", "pipelineArn": pipeline_arn,
                            "pipelineExecutionArn": arn}
    assert last.detail["previousPipelineExecutionStatus"] == "Executing"
    assert last.detail["executionEndTime"] >= last.detail["executionStartTime"]
    assert step.detail["stepType"] == "Condition"
    assert step.detail["metadata"] == {"condition": {"outcome": "True"}}  # 0.5 >= 0.1
    assert step.detail["previousStepStatus"] == "Executing"
    assert step.detail["stepStartTime"] <= step.detail["stepEndTime"]
    assert (failed.detail["stepType"], failed.detail["failureReason"]) == ("Fail", "gate closed")
    assert failed.detail["metadata"] == {"fail": {"errorMessage": "gate closed"}}


def test_a_rule_on_failed_executions_starts_another_pipeline(server: StratumServer) -> None:
    sm, events = server.client("sagemaker"), server.client("events")
    account = server.account_id("dev")
    iam = server.client("iam")
    role_name = f"events-start-{uuid.uuid4().hex[:6]}"
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role_name, PolicyName="start", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:StartPipelineExecution",
                                                "Resource": "*"}]}))
    pipeline_role = f"arn:aws:iam::{account}:role/events-pipeline"
    failing, handler = f"failing-{uuid.uuid4().hex[:6]}", f"on-failure-{uuid.uuid4().hex[:6]}"
    failing_arn = sm.create_pipeline(PipelineName=failing, RoleArn=pipeline_role,
                                     PipelineDefinition=_definition(0.1))["PipelineArn"]
    handler_arn = sm.create_pipeline(PipelineName=handler, RoleArn=pipeline_role,
                                     PipelineDefinition=_definition(0.9))["PipelineArn"]
    rule = events.put_rule(Name=f"failed-{uuid.uuid4().hex[:6]}", EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": [STATUS],
        "detail": {"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [failing_arn]}}))["RuleArn"]
    events.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{
        "Id": "handler", "Arn": handler_arn, "RoleArn": role, "SageMakerPipelineParameters": {
            "PipelineParameterList": [{"Name": "FailedExecution", "Value": "$.detail.pipelineExecutionArn"}]}}])
    failed = sm.start_pipeline_execution(PipelineName=failing)["PipelineExecutionArn"]
    started = _wait(lambda: sm.list_pipeline_executions(PipelineName=handler)["PipelineExecutionSummaries"],
                    what="the handler pipeline to start")
    assert len(started) == 1
    parameters = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=started[0]["PipelineExecutionArn"])["PipelineParameters"]
    assert parameters == [{"Name": "FailedExecution", "Value": failed}]
    # The handler's own success matches nothing: it does not start itself again.
    time.sleep(2)
    assert len(sm.list_pipeline_executions(PipelineName=handler)["PipelineExecutionSummaries"]) == 1


def test_job_state_changes(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = f"events-job-{uuid.uuid4().hex[:6]}"
    arn = sm.create_processing_job(**processing_request(server, name, "print('hello')\n"))["ProcessingJobArn"]
    assert wait_job(sm, "processing", name)["ProcessingJobStatus"] == "Completed"
    events = _wait(lambda: _events(server, arn) if len(_events(server, arn)) >= 2 else None, what="the job's events")
    assert [(e.detail_type, e.detail["ProcessingJobStatus"]) for e in events] == [
        ("SageMaker Processing Job State Change", "InProgress"), ("SageMaker Processing Job State Change", "Completed")]
    last = events[-1].detail
    assert (last["ProcessingJobName"], last["ProcessingJobArn"]) == (name, arn)
    assert isinstance(last["CreationTime"], int) and last["ProcessingEndTime"] >= last["CreationTime"]


ON_FAILURE = '''
import json


def handler(event, context):
    # What a team's function does with a failed execution: here, say which one in the logs.
    print("FAILED " + event["detail"]["pipelineExecutionArn"] + " " + event["detail-type"])
    return {"ok": True}
'''


def test_a_failed_execution_invokes_a_lambda_function(server: StratumServer) -> None:
    from test_lambda import create

    sm, events, lam, logs = (server.client(s) for s in ("sagemaker", "events", "lambda", "logs"))
    function = create(server, {"app.py": ON_FAILURE})
    name = function["FunctionName"]
    pipeline = f"to-lambda-{uuid.uuid4().hex[:6]}"
    pipeline_arn = sm.create_pipeline(PipelineName=pipeline, PipelineDefinition=_definition(0.1),
                                      RoleArn=f"arn:aws:iam::{server.account_id('dev')}:role/p")["PipelineArn"]
    rule = events.put_rule(Name=f"failed-{uuid.uuid4().hex[:6]}", EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": [STATUS],
        "detail": {"currentPipelineExecutionStatus": ["Failed"], "pipelineArn": [pipeline_arn]}}))["RuleArn"]
    events.put_targets(Rule=rule.rsplit("/", 1)[1], Targets=[{"Id": "fn", "Arn": function["FunctionArn"]}])

    # Without the function's permission for EventBridge, the delivery is refused (and not retried).
    refused = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    failures = _wait(lambda: [d for d in _deliveries(server, rule) if d.status == "failed"], what="the refused delivery")
    assert "AccessDenied" in (failures[0].last_error or ""), failures[0]
    lam.add_permission(FunctionName=name, StatementId="events", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com", SourceArn=rule)
    failed = sm.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]

    def printed() -> list[str]:
        try:
            found = logs.filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern='"FAILED"')["events"]
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [e["message"].strip() for e in found]

    lines = _wait(printed, what="the function's output")
    assert lines == [f"FAILED {failed} {STATUS}"], lines
    time.sleep(1)
    assert refused not in " ".join(printed())


COPY_TO_HUB = '''
import os
import boto3


def handler(event, context):
    # The hub's function, as its role: read the spoke's approved version, register it in the hub.
    sm = boto3.client("sagemaker")
    source = sm.describe_model_package(ModelPackageName=event["detail"]["ModelPackageArn"])
    copied = sm.create_model_package(
        ModelPackageGroupName=os.environ["HUB_GROUP"], ModelApprovalStatus="PendingManualApproval",
        InferenceSpecification=source["InferenceSpecification"],
        CustomerMetadataProperties={"source": source["ModelPackageArn"]})
    print("COPIED " + copied["ModelPackageArn"])
    return {"copied": copied["ModelPackageArn"]}
'''
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/xgboost:1.7-1"


def test_hub_pulls_approved_spoke_packages_through_a_function(server: StratumServer) -> None:
    """The pull pattern: the spoke's default bus forwards its approvals to the hub's bus (its policy
    allows the spoke); the hub's rule invokes a function that copies the package as its role."""
    from test_lambda import create, lambda_role

    spoke, hub = server.account_id("dev"), server.account_id("hub")
    spoke_sm, hub_sm = server.client("sagemaker"), server.client("sagemaker", "hub")
    spoke_events, hub_events = server.client("events"), server.client("events", "hub")
    spoke_group, hub_group = f"spoke-{uuid.uuid4().hex[:6]}", f"central-{uuid.uuid4().hex[:6]}"
    spoke_sm.create_model_package_group(ModelPackageGroupName=spoke_group)
    hub_sm.create_model_package_group(ModelPackageGroupName=hub_group)
    # The hub's function role may read the spoke's group (the spoke's group policy lets the hub).
    spoke_sm.put_model_package_group_policy(ModelPackageGroupName=spoke_group, ResourcePolicy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{hub}:root"},
            "Action": ["sagemaker:DescribeModelPackage", "sagemaker:DescribeModelPackageGroup"],
            "Resource": [f"arn:aws:sagemaker:us-east-1:{spoke}:model-package/{spoke_group}/*",
                         f"arn:aws:sagemaker:us-east-1:{spoke}:model-package-group/{spoke_group}"]}]}))
    role = lambda_role(server, account="hub", policy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["sagemaker:DescribeModelPackage", "sagemaker:CreateModelPackage"],
         "Resource": "*"}]})
    function = create(server, {"app.py": COPY_TO_HUB}, role=role, account="hub",
                      Environment={"Variables": {"HUB_GROUP": hub_group}})
    bus = f"approvals-{uuid.uuid4().hex[:6]}"
    bus_arn = hub_events.create_event_bus(Name=bus)["EventBusArn"]
    hub_rule = hub_events.put_rule(Name=f"copy-{uuid.uuid4().hex[:6]}", EventBusName=bus, EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelApprovalStatus": ["Approved"]}}))["RuleArn"]
    hub_events.put_targets(Rule=hub_rule.rsplit("/", 1)[1], EventBusName=bus,
                           Targets=[{"Id": "copy", "Arn": function["FunctionArn"]}])
    server.client("lambda", "hub").add_permission(
        FunctionName=function["FunctionName"], StatementId="events", Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com", SourceArn=hub_rule)
    forward = spoke_events.put_rule(Name=f"forward-{uuid.uuid4().hex[:6]}", EventPattern=json.dumps({
        "source": ["aws.sagemaker"], "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [spoke_group]}}))["RuleArn"]
    spoke_events.put_targets(Rule=forward.rsplit("/", 1)[1], Targets=[{"Id": "hub", "Arn": bus_arn}])

    def new_version() -> str:
        return str(spoke_sm.create_model_package(ModelPackageGroupName=spoke_group, InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://models/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]})["ModelPackageArn"])

    # Without the hub bus's permission, the spoke's forward is refused.
    refused = new_version()
    spoke_sm.update_model_package(ModelPackageArn=refused, ModelApprovalStatus="Approved")
    # Both of its state changes (created, approved) are refused, and not retried.
    failures = _wait(lambda: [d for d in _deliveries(server, forward) if d.status == "failed"] if len(
        [d for d in _deliveries(server, forward) if d.status == "failed"]) == 2 else None, what="the refused forwards")
    assert all("AccessDenied" in (f.last_error or "") for f in failures)
    hub_events.put_permission(EventBusName=bus, StatementId="spoke", Action="events:PutEvents", Principal=spoke)

    approved = new_version()
    spoke_sm.update_model_package(ModelPackageArn=approved, ModelApprovalStatus="Approved")
    copies = _wait(lambda: hub_sm.list_model_packages(ModelPackageGroupName=hub_group)["ModelPackageSummaryList"],
                   what="the hub's copy")
    assert len(copies) == 1
    copy = hub_sm.describe_model_package(ModelPackageName=copies[0]["ModelPackageArn"])
    assert copy["CustomerMetadataProperties"] == {"source": approved}
    assert copy["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE
    assert copy["CreatedBy"]["IamIdentity"]["Arn"].startswith(f"arn:aws:sts::{hub}:assumed-role/{role.split('/')[-1]}/")


def test_endpoint_state_changes(server: StratumServer) -> None:
    from test_hosting_endpoints import config, script_model, wait_in_service

    sm = server.client("sagemaker")
    name = f"events-ep-{uuid.uuid4().hex[:6]}"
    config(sm, name, script_model(server, name))
    arn = sm.create_endpoint(EndpointName=name, EndpointConfigName=name,
                             Tags=[{"Key": "team", "Value": "ml"}])["EndpointArn"]
    wait_in_service(sm, name)
    events = _wait(lambda: _events(server, arn) if len(_events(server, arn)) >= 2 else None, what="the endpoint's events")
    assert [e.detail["EndpointStatus"] for e in events] == ["CREATING", "IN_SERVICE"]
    last = events[-1]
    assert last.detail_type == "SageMaker Endpoint State Change"
    assert (last.detail["EndpointName"], last.detail["EndpointArn"], last.detail["Tags"]) == (name, arn, {"team": "ml"})
    assert last.detail["ProductionVariants"][0]["CurrentInstanceCount"] == 1
    sm.delete_endpoint(EndpointName=name)
