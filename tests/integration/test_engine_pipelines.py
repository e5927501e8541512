"""The pipeline execution engine end to end: boto3 against a real server runs Condition, Fail,
Lambda (local functions) and Callback steps, with parameters, property references, JsonGet,
parallelism, caching, retry policies, stop, RetryPipelineExecution, selective execution and
callbacks (SendPipelineExecutionStepSuccess/Failure)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import StratumServer, pipeline_role

FUNCTIONS_SOURCE = '''
import json, pathlib, time


def echo(event, context):
    return {"doubled": event["x"] * 2, "label": "v%s" % event["x"], "flag": event["x"] > 2,
            "function": context.function_name}


def sleepy(event, context):
    time.sleep(event.get("seconds", 1))
    return {"slept": event.get("seconds", 1)}


class Throttled(Exception):
    error_type = "Step.THROTTLING"


def _count(path):
    p = pathlib.Path(path)
    n = int(p.read_text()) if p.exists() else 0
    p.write_text(str(n + 1))
    return n + 1


def flaky(event, context):
    n = _count(event["counter"])
    if n <= event["fail_times"]:
        raise Throttled("attempt %d throttled" % n)
    return {"attempts": n}


def counted(event, context):
    return {"runs": _count(event["counter"]), "value": event.get("value", "x")}


def gated(event, context):
    _count(event["counter"])
    if not pathlib.Path(event["gate"]).exists():
        raise ValueError("gate is closed")
    return {"opened": True}
'''


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def functions(server: StratumServer, tmp_path: Path) -> dict[str, str]:
    """Creates this test's Lambda functions through `stratum lambda load`; returns their ARNs."""
    return register_functions(server, tmp_path)


def register_functions(server: StratumServer, tmp_path: Path) -> dict[str, str]:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    module = f"engine_fns_{uuid.uuid4().hex[:8]}"
    (code / f"{module}.py").write_text(FUNCTIONS_SOURCE)
    suffix = uuid.uuid4().hex[:8]
    names = {n: f"{n}-{suffix}" for n in ("echo", "sleepy", "flaky", "counted", "gated")}
    entries = [{"name": fn, "account": "dev", "handler": f"{module}:{n}", "path": str(code), "timeout": 60}
               for n, fn in names.items()]
    entries.append({"name": f"cmd-{suffix}", "account": "dev",
                    "command": [sys.executable, "-c", "import json,sys; e=json.load(sys.stdin); "
                                                      "print(json.dumps({'sum': e['a'] + e['b']}))"]})
    names["cmd"] = f"cmd-{suffix}"
    spec = tmp_path / "functions.yaml"
    spec.write_text(json.dumps({"functions": entries}))  # JSON is YAML
    cmd = [sys.executable, "-m", "stratum.cli", "lambda", "load", str(spec), "--data-dir", str(server.data_dir)]
    if server.database_url:
        cmd += ["--database-url", server.database_url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    account = server.account_id("dev")
    arns = {n: f"arn:aws:lambda:us-east-1:{account}:function:{fn}" for n, fn in names.items()}
    assert sorted(out.stdout.split()) == sorted(arns.values())
    return arns


def create_pipeline(server: StratumServer, steps: list[dict[str, Any]], parameters: list[dict[str, Any]] | None = None,
                    **kwargs: Any) -> str:
    name = _uid("eng")
    definition = {"Version": "2020-12-01", "Parameters": parameters or [], "Steps": steps}
    server.client("sagemaker").create_pipeline(
        PipelineName=name, PipelineDefinition=json.dumps(definition),
        RoleArn=pipeline_role(server), **kwargs)
    return name


def wait_status(sm: Any, arn: str, done: tuple[str, ...] = ("Succeeded", "Failed", "Stopped"),
                timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        desc = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if desc["PipelineExecutionStatus"] in done:
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"execution still {desc['PipelineExecutionStatus']}: {steps_of(sm, arn)}")
        time.sleep(0.05)


def steps_of(sm: Any, arn: str) -> dict[str, dict[str, Any]]:
    pages = sm.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=arn)
    return {s["StepName"]: s for page in pages for s in page["PipelineExecutionSteps"]}


def wait_step(sm: Any, arn: str, step: str, statuses: tuple[str, ...], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = steps_of(sm, arn).get(step)
        if found is not None and found["StepStatus"] in statuses:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"step {step} is {found}")
        time.sleep(0.05)


def run(sm: Any, name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    arn = sm.start_pipeline_execution(PipelineName=name, **kwargs)["PipelineExecutionArn"]
    return arn, wait_status(sm, arn)


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


# ------------------------------------------------------------------------------- condition & fail
def test_condition_takes_the_branch_of_the_parameter_and_fail_joins_its_message(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = create_pipeline(server, parameters=[
        {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5},
        {"Name": "Who", "Type": "String", "DefaultValue": "nobody"},
    ], steps=[
        {"Name": "Check", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.Threshold"},
                            "RightValue": 0.7}],
            "IfSteps": [{"Name": "High", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {
                "On": " ", "Values": ["high for", {"Get": "Parameters.Who"}, "in",
                                      {"Get": "Execution.PipelineExecutionId"}]}}}}],
            "ElseSteps": [{"Name": "Low", "Type": "Fail", "Arguments": {"ErrorMessage": "too low"}}]}},
    ])
    arn, desc = run(sm, name, PipelineParameters=[{"Name": "Threshold", "Value": "0.9"}, {"Name": "Who", "Value": "ada"}])
    execution_id = arn.rsplit("/", 1)[1]
    assert desc["PipelineExecutionStatus"] == "Failed"
    assert desc["FailureReason"] == f"high for ada in {execution_id}"
    steps = steps_of(sm, arn)
    assert set(steps) == {"Check", "High"}  # the branch not taken is not listed
    assert steps["Check"]["StepStatus"] == "Succeeded"
    assert steps["Check"]["Metadata"] == {"Condition": {"Outcome": "True"}}
    assert steps["High"]["StepStatus"] == "Failed"
    assert steps["High"]["FailureReason"] == f"high for ada in {execution_id}"
    assert steps["High"]["Metadata"] == {"Fail": {"ErrorMessage": f"high for ada in {execution_id}"}}
    assert steps["Check"]["StartTime"] <= steps["Check"]["EndTime"] <= steps["High"]["StartTime"]
    assert steps["High"]["AttemptCount"] == 1

    arn, desc = run(sm, name)  # default 0.5: the else branch
    assert desc["FailureReason"] == "too low"
    steps = steps_of(sm, arn)
    assert set(steps) == {"Check", "Low"}
    assert steps["Check"]["Metadata"] == {"Condition": {"Outcome": "False"}}
    listed = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"][0]
    assert listed["PipelineExecutionStatus"] == "Failed" and listed["PipelineExecutionFailureReason"] == "too low"


def test_conditions_or_not_in_and_a_json_file_in_s3(server: StratumServer) -> None:
    sm, s3 = server.client("sagemaker"), server.client("s3")
    bucket = _uid("metrics")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="eval/evaluation.json",
                  Body=json.dumps({"regression_metrics": {"mse": {"value": 4.2}}, "tags": ["a", "b"]}).encode())
    uri = {"Std:Join": {"On": "/", "Values": ["s3:/", bucket, "eval", "evaluation.json"]}}
    mse = {"Std:JsonGet": {"S3Uri": uri, "Path": "regression_metrics.mse.value"}}
    name = create_pipeline(server, parameters=[{"Name": "Mode", "Type": "String", "DefaultValue": "fast"}], steps=[
        {"Name": "Gate", "Type": "Condition", "Arguments": {
            "Conditions": [
                {"Type": "LessThan", "LeftValue": mse, "RightValue": 5},
                {"Type": "Or", "Conditions": [
                    {"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "slow"},
                    {"Type": "In", "QueryValue": {"Get": "Parameters.Mode"}, "Values": ["fast", "medium"]}]},
                {"Type": "Not", "Condition": {"Type": "Equals", "LeftValue": {
                    "Std:JsonGet": {"S3Uri": uri, "Path": "tags[1]"}}, "RightValue": "z"}}],
            "IfSteps": [{"Name": "Pass", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {
                "On": "=", "Values": ["mse", mse]}}}}],
            "ElseSteps": []}},
    ])
    _, desc = run(sm, name)
    assert desc["FailureReason"] == "mse=4.2"
    arn, desc = run(sm, name, PipelineParameters=[{"Name": "Mode", "Value": "other"}])
    assert desc["PipelineExecutionStatus"] == "Succeeded"  # Or is false: the empty else branch
    assert steps_of(sm, arn)["Gate"]["Metadata"] == {"Condition": {"Outcome": "False"}}

    missing = create_pipeline(server, steps=[{"Name": "Gate", "Type": "Condition", "Arguments": {
        "Conditions": [{"Type": "Equals", "RightValue": 1, "LeftValue": {"Std:JsonGet": {
            "S3Uri": f"s3://{bucket}/nothing.json", "Path": "a"}}}], "IfSteps": [], "ElseSteps": []}}])
    arn, desc = run(sm, missing)
    assert desc["PipelineExecutionStatus"] == "Failed"
    assert desc["FailureReason"] == "Step failure: One or multiple steps failed."
    assert "NoSuchKey" in steps_of(sm, arn)["Gate"]["FailureReason"]


# ------------------------------------------------------------------------------------------ lambda
def test_lambda_outputs_feed_a_later_condition_and_step(server: StratumServer, functions: dict[str, str]) -> None:
    sm = server.client("sagemaker")
    outputs = [{"OutputName": "doubled", "OutputType": "Integer"}, {"OutputName": "label", "OutputType": "String"},
               {"OutputName": "flag", "OutputType": "Boolean"}]
    name = create_pipeline(server, parameters=[{"Name": "X", "Type": "Integer", "DefaultValue": 1}], steps=[
        {"Name": "Compute", "Type": "Lambda", "FunctionArn": functions["echo"], "OutputParameters": outputs,
         "Arguments": {"x": {"Get": "Parameters.X"}}},
        {"Name": "Big", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThan", "LeftValue": {"Get": "Steps.Compute.OutputParameters['doubled']"},
                            "RightValue": 5},
                           {"Type": "Equals", "LeftValue": {"Get": "Steps.Compute.OutputParameters['flag']"},
                            "RightValue": True}],
            "IfSteps": [{"Name": "Add", "Type": "Lambda", "FunctionArn": functions["cmd"],
                         "OutputParameters": [{"OutputName": "sum", "OutputType": "Integer"}],
                         "Arguments": {"a": {"Get": "Steps.Compute.OutputParameters['doubled']"}, "b": 10}}],
            "ElseSteps": [{"Name": "Small", "Type": "Fail", "Arguments": {"ErrorMessage": {"Std:Join": {
                "On": ":", "Values": ["small", {"Get": "Steps.Compute.OutputParameters['label']"}]}}}}]}},
    ])
    arn, desc = run(sm, name, PipelineParameters=[{"Name": "X", "Value": "4"}])
    assert desc["PipelineExecutionStatus"] == "Succeeded", steps_of(sm, arn)
    steps = steps_of(sm, arn)
    assert set(steps) == {"Compute", "Big", "Add"}
    assert steps["Compute"]["Metadata"]["Lambda"] == {"Arn": functions["echo"], "OutputParameters": [
        {"Name": "doubled", "Value": "8"}, {"Name": "label", "Value": "v4"}, {"Name": "flag", "Value": "true"}]}
    assert steps["Add"]["Metadata"]["Lambda"]["OutputParameters"] == [{"Name": "sum", "Value": "18"}]

    arn, desc = run(sm, name)  # X=1: doubled 2, flag false
    assert desc["FailureReason"] == "small:v1"
    assert set(steps_of(sm, arn)) == {"Compute", "Big", "Small"}


def test_lambda_failures_are_reported(server: StratumServer, functions: dict[str, str]) -> None:
    sm = server.client("sagemaker")
    account = server.account_id("dev")
    unknown = f"arn:aws:lambda:us-east-1:{account}:function:{_uid('nope')}"
    name = create_pipeline(server, steps=[
        {"Name": "Unknown", "Type": "Lambda", "FunctionArn": unknown, "Arguments": {}},
        {"Name": "Missing", "Type": "Lambda", "FunctionArn": functions["echo"], "Arguments": {"x": 1},
         "OutputParameters": [{"OutputName": "absent", "OutputType": "String"}]},
        {"Name": "Raises", "Type": "Lambda", "FunctionArn": functions["gated"],
         "Arguments": {"counter": "/nonexistent/dir/c", "gate": "/nonexistent"}},
        {"Name": "Never", "Type": "Fail", "DependsOn": ["Unknown"], "Arguments": {"ErrorMessage": "no"}},
    ])
    arn, desc = run(sm, name)
    assert desc["FailureReason"] == "Step failure: One or multiple steps failed."
    steps = steps_of(sm, arn)
    assert "Never" not in steps
    assert steps["Unknown"]["StepStatus"] == "Failed"
    assert f"Function not found: {unknown}" in steps["Unknown"]["FailureReason"]
    assert "stratum lambda register" in steps["Unknown"]["FailureReason"]
    assert "no value for OutputParameter 'absent'" in steps["Missing"]["FailureReason"]
    assert "FileNotFoundError" in steps["Raises"]["FailureReason"]


def test_parallelism_limit_is_respected(server: StratumServer, functions: dict[str, str]) -> None:
    sm = server.client("sagemaker")
    steps = [{"Name": f"Sleep{i}", "Type": "Lambda", "FunctionArn": functions["sleepy"],
              "Arguments": {"seconds": 0.8, "i": i}} for i in range(6)]
    name = create_pipeline(server, steps=steps, ParallelismConfiguration={"MaxParallelExecutionSteps": 4})
    arn, desc = run(sm, name, ParallelismConfiguration={"MaxParallelExecutionSteps": 2})
    assert desc["PipelineExecutionStatus"] == "Succeeded"
    assert desc["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 2}
    listed = steps_of(sm, arn)
    assert len(listed) == 6
    events = sorted([(s["StartTime"], 1) for s in listed.values()] + [(s["EndTime"], -1) for s in listed.values()],
                    key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2


# ----------------------------------------------------------------------------------------- caching
def test_cached_step_reuses_the_earlier_run(server: StratumServer, functions: dict[str, str], tmp_path: Path) -> None:
    sm = server.client("sagemaker")
    counter = str(tmp_path / "cached-count")
    step = {"Name": "Expensive", "Type": "Lambda", "FunctionArn": functions["counted"],
            "Arguments": {"counter": counter, "value": {"Get": "Parameters.V"}},
            "OutputParameters": [{"OutputName": "runs", "OutputType": "Integer"}],
            "CacheConfig": {"Enabled": True, "ExpireAfter": "PT1H"}}
    name = create_pipeline(server, parameters=[{"Name": "V", "Type": "String", "DefaultValue": "a"}], steps=[step])
    first, desc = run(sm, name)
    assert desc["PipelineExecutionStatus"] == "Succeeded"
    assert "CacheHitResult" not in steps_of(sm, first)["Expensive"]
    second, desc = run(sm, name)
    assert desc["PipelineExecutionStatus"] == "Succeeded"
    cached = steps_of(sm, second)["Expensive"]
    assert cached["CacheHitResult"] == {"SourcePipelineExecutionArn": first}
    assert cached["Metadata"] == steps_of(sm, first)["Expensive"]["Metadata"]
    assert cached["Metadata"]["Lambda"]["OutputParameters"] == [{"Name": "runs", "Value": "1"}]
    assert Path(counter).read_text() == "1"
    # Other resolved arguments are another signature.
    third, _ = run(sm, name, PipelineParameters=[{"Name": "V", "Value": "b"}])
    assert "CacheHitResult" not in steps_of(sm, third)["Expensive"]
    assert Path(counter).read_text() == "2"


# ------------------------------------------------------------------------------------------ retries
def test_retry_policies_retry_a_throttled_lambda(server: StratumServer, functions: dict[str, str],
                                                  tmp_path: Path) -> None:
    sm = server.client("sagemaker")

    def step(name: str, fail_times: int, max_attempts: int) -> dict[str, Any]:
        return {"Name": name, "Type": "Lambda", "FunctionArn": functions["flaky"],
                "Arguments": {"counter": str(tmp_path / name), "fail_times": fail_times},
                "OutputParameters": [{"OutputName": "attempts", "OutputType": "Integer"}],
                "RetryPolicies": [{"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "IntervalSeconds": 1,
                                   "BackoffRate": 1.0, "MaxAttempts": 5},
                                  {"ExceptionType": ["Step.THROTTLING", "Step.SERVICE_FAULT"],
                                   "IntervalSeconds": 0.1, "BackoffRate": 2.0, "MaxAttempts": max_attempts}]}

    name = create_pipeline(server, steps=[step("Eventually", 2, 3), step("GivesUp", 5, 1)])
    arn, desc = run(sm, name)
    steps = steps_of(sm, arn)
    assert steps["Eventually"]["StepStatus"] == "Succeeded"
    assert steps["Eventually"]["AttemptCount"] == 3
    assert steps["Eventually"]["Metadata"]["Lambda"]["OutputParameters"] == [{"Name": "attempts", "Value": "3"}]
    assert steps["GivesUp"]["StepStatus"] == "Failed"
    assert steps["GivesUp"]["AttemptCount"] == 2
    assert "Step.THROTTLING: attempt 2 throttled" in steps["GivesUp"]["FailureReason"]
    assert desc["PipelineExecutionStatus"] == "Failed"


def test_retry_pipeline_execution_keeps_succeeded_steps(server: StratumServer, functions: dict[str, str],
                                                         tmp_path: Path) -> None:
    sm = server.client("sagemaker")
    first_count, gate_count, gate = tmp_path / "first", tmp_path / "gate-count", tmp_path / "gate"
    name = create_pipeline(server, steps=[
        {"Name": "First", "Type": "Lambda", "FunctionArn": functions["counted"],
         "Arguments": {"counter": str(first_count), "value": "kept"},
         "OutputParameters": [{"OutputName": "value", "OutputType": "String"}]},
        {"Name": "Gated", "Type": "Lambda", "FunctionArn": functions["gated"],
         "Arguments": {"counter": str(gate_count), "gate": str(gate),
                       "from": {"Get": "Steps.First.OutputParameters['value']"}}},
        {"Name": "Last", "Type": "Condition", "DependsOn": ["Gated"], "Arguments": {
            "Conditions": [{"Type": "Equals", "LeftValue": {"Get": "Steps.First.OutputParameters['value']"},
                            "RightValue": "kept"}], "IfSteps": [], "ElseSteps": []}},
    ])
    arn, desc = run(sm, name)
    assert desc["PipelineExecutionStatus"] == "Failed"
    with pytest.raises(ClientError) as exc:
        sm.retry_pipeline_execution(PipelineExecutionArn=arn + "x")
    assert error_code(exc) == "ResourceNotFound"

    gate.write_text("open")
    assert sm.retry_pipeline_execution(PipelineExecutionArn=arn, ParallelismConfiguration={
        "MaxParallelExecutionSteps": 3})["PipelineExecutionArn"] == arn
    desc = wait_status(sm, arn)
    assert desc["PipelineExecutionStatus"] == "Succeeded", steps_of(sm, arn)
    assert "FailureReason" not in desc
    assert desc["ParallelismConfiguration"] == {"MaxParallelExecutionSteps": 3}
    steps = steps_of(sm, arn)
    assert {n: s["StepStatus"] for n, s in steps.items()} == {"First": "Succeeded", "Gated": "Succeeded",
                                                             "Last": "Succeeded"}
    assert steps["First"]["AttemptCount"] == 1 and steps["Gated"]["AttemptCount"] == 2
    assert first_count.read_text() == "1" and gate_count.read_text() == "2"

    with pytest.raises(ClientError) as exc:
        sm.retry_pipeline_execution(PipelineExecutionArn=arn)
    assert error_code(exc) == "ValidationException"


# ----------------------------------------------------------------------------------------- callback
def _callback_pipeline(server: StratumServer) -> str:
    return create_pipeline(server, steps=[
        {"Name": "Wait", "Type": "Callback", "Arguments": {"job": {"Get": "Execution.PipelineExecutionId"}},
         "SqsQueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/work",
         "OutputParameters": [{"OutputName": "score", "OutputType": "Float"},
                              {"OutputName": "note", "OutputType": "String"}]},
        {"Name": "Judge", "Type": "Condition", "Arguments": {
            "Conditions": [{"Type": "GreaterThan", "LeftValue": {"Get": "Steps.Wait.OutputParameters['score']"},
                            "RightValue": 0.5}],
            "IfSteps": [],
            "ElseSteps": [{"Name": "Reject", "Type": "Fail", "Arguments": {"ErrorMessage": {
                "Get": "Steps.Wait.OutputParameters['note']"}}}]}},
    ])


def _token(sm: Any, arn: str) -> str:
    step = wait_step(sm, arn, "Wait", ("Executing",))
    callback = step["Metadata"]["Callback"]
    assert callback["SqsQueueUrl"] == "https://sqs.us-east-1.amazonaws.com/123456789012/work"
    assert len(callback["CallbackToken"]) == 10 and callback["CallbackToken"].isalnum()
    return str(callback["CallbackToken"])


def test_callback_success_and_failure(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _callback_pipeline(server)
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    token = _token(sm, arn)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    with pytest.raises(ClientError) as exc:
        sm.send_pipeline_execution_step_success(CallbackToken=token, OutputParameters=[
            {"Name": "score", "Value": "not-a-number"}])
    assert error_code(exc) == "ValidationException"
    assert sm.send_pipeline_execution_step_success(CallbackToken=token, OutputParameters=[
        {"Name": "score", "Value": "0.2"}, {"Name": "note", "Value": "score too low"}])["PipelineExecutionArn"] == arn
    desc = wait_status(sm, arn)
    assert desc["FailureReason"] == "score too low"
    steps = steps_of(sm, arn)
    assert steps["Wait"]["StepStatus"] == "Succeeded"
    assert steps["Wait"]["Metadata"]["Callback"]["OutputParameters"] == [
        {"Name": "score", "Value": "0.2"}, {"Name": "note", "Value": "score too low"}]
    with pytest.raises(ClientError) as exc:
        sm.send_pipeline_execution_step_success(CallbackToken=token)
    assert error_code(exc) == "ConflictException"
    with pytest.raises(ClientError) as exc:
        sm.send_pipeline_execution_step_failure(CallbackToken="Nosuch1234", FailureReason="x")
    assert error_code(exc) == "ResourceNotFound"

    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    token = _token(sm, arn)
    # The caller needs sagemaker:SendPipelineExecutionStepFailure on the execution.
    iam = server.client("iam")
    user = _uid("consumer")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    outsider = server.client("sagemaker", aws_access_key_id=key["AccessKeyId"],
                             aws_secret_access_key=key["SecretAccessKey"])
    with pytest.raises(ClientError) as exc:
        outsider.send_pipeline_execution_step_failure(CallbackToken=token, FailureReason="nope")
    assert error_code(exc) == "AccessDeniedException"
    iam.put_user_policy(UserName=user, PolicyName="callbacks", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sagemaker:SendPipelineExecutionStep*",
                                                 "Resource": arn}]}))
    deadline = time.monotonic() + 10
    while True:
        try:
            outsider.send_pipeline_execution_step_failure(CallbackToken=token, FailureReason="worker crashed")
            break
        except ClientError as err:  # the new policy is picked up within the credential cache window
            if err.response["Error"]["Code"] != "AccessDeniedException" or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    desc = wait_status(sm, arn)
    assert desc["FailureReason"] == "Step failure: One or multiple steps failed."
    steps = steps_of(sm, arn)
    assert steps["Wait"]["StepStatus"] == "Failed" and steps["Wait"]["FailureReason"] == "worker crashed"
    assert set(steps) == {"Wait"}


# ---------------------------------------------------------------------------------------- stopping
def test_stop_waits_for_a_running_lambda_then_stops(server: StratumServer, functions: dict[str, str]) -> None:
    sm = server.client("sagemaker")
    name = create_pipeline(server, steps=[
        {"Name": "Slow", "Type": "Lambda", "FunctionArn": functions["sleepy"], "Arguments": {"seconds": 1.5}},
        {"Name": "After", "Type": "Fail", "DependsOn": ["Slow"], "Arguments": {"ErrorMessage": "not reached"}},
    ])
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    wait_step(sm, arn, "Slow", ("Executing",))
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Stopping"
    assert wait_step(sm, arn, "Slow", ("Stopping", "Succeeded"))["StepStatus"] in ("Stopping", "Succeeded")
    desc = wait_status(sm, arn)
    assert desc["PipelineExecutionStatus"] == "Stopped" and "FailureReason" not in desc
    # As in SageMaker, the function is not interrupted: it finishes, and nothing after it starts.
    steps = steps_of(sm, arn)
    assert set(steps) == {"Slow"} and steps["Slow"]["StepStatus"] == "Succeeded"


def test_stop_with_a_waiting_callback(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = _callback_pipeline(server)
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    token = _token(sm, arn)
    sm.stop_pipeline_execution(PipelineExecutionArn=arn)
    wait_step(sm, arn, "Wait", ("Stopping",))
    time.sleep(0.3)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Stopping"
    # The consumer sees Stopping and reports back; only then does the execution stop.
    sm.send_pipeline_execution_step_failure(CallbackToken=token, FailureReason="cancelled on request")
    desc = wait_status(sm, arn)
    assert desc["PipelineExecutionStatus"] == "Stopped"
    assert set(steps_of(sm, arn)) == {"Wait"}


# ---------------------------------------------------------------------------------------- selective
def test_selective_execution_reuses_the_source_results(server: StratumServer, functions: dict[str, str],
                                                       tmp_path: Path) -> None:
    sm = server.client("sagemaker")
    prep_count, train_count = tmp_path / "prep", tmp_path / "train"
    name = create_pipeline(server, steps=[
        {"Name": "Prep", "Type": "Lambda", "FunctionArn": functions["counted"],
         "Arguments": {"counter": str(prep_count), "value": "features"},
         "OutputParameters": [{"OutputName": "value", "OutputType": "String"}]},
        {"Name": "Train", "Type": "Lambda", "FunctionArn": functions["counted"],
         "Arguments": {"counter": str(train_count), "value": {"Get": "Steps.Prep.OutputParameters['value']"}},
         "OutputParameters": [{"OutputName": "value", "OutputType": "String"}]},
        {"Name": "Report", "Type": "Fail", "DependsOn": ["Train"], "Arguments": {"ErrorMessage": {
            "Get": "Steps.Train.OutputParameters['value']"}}},
    ])
    source, desc = run(sm, name)
    assert desc["FailureReason"] == "features"
    arn = sm.start_pipeline_execution(PipelineName=name, SelectiveExecutionConfig={
        "SourcePipelineExecutionArn": source, "SelectedSteps": [{"StepName": "Train"}]})["PipelineExecutionArn"]
    desc = wait_status(sm, arn)
    assert desc["PipelineExecutionStatus"] == "Succeeded", steps_of(sm, arn)
    steps = steps_of(sm, arn)
    assert set(steps) == {"Prep", "Train"}  # Report is not selected
    assert steps["Prep"]["SelectiveExecutionResult"] == {"SourcePipelineExecutionArn": source}
    assert steps["Prep"]["StepStatus"] == "Succeeded"
    assert "SelectiveExecutionResult" not in steps["Train"]
    assert prep_count.read_text() == "1" and train_count.read_text() == "2"


# ------------------------------------------------------------------------------------- unsupported
def test_unsupported_step_types_fail_clearly(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    name = create_pipeline(server, steps=[
        {"Name": "Quality", "Type": "QualityCheck", "Arguments": {"x": 1}},
        {"Name": "Emr", "Type": "EMR", "Arguments": {"ClusterId": "j-1"}},
    ])
    arn, desc = run(sm, name)
    assert desc["PipelineExecutionStatus"] == "Failed"
    steps = steps_of(sm, arn)
    assert steps["Quality"]["FailureReason"] == "Step type QualityCheck is not supported by Stratum."
    assert steps["Emr"]["FailureReason"] == "Step type EMR is not supported by Stratum."


# ------------------------------------------------------------------------------------------ restart
@pytest.mark.slow
def test_execution_waiting_on_a_callback_survives_a_crash(fresh_server: StratumServer, tmp_path: Path) -> None:
    srv = fresh_server
    sm = srv.client("sagemaker")
    name = _callback_pipeline(srv)
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    token = _token(sm, arn)
    srv.kill()
    srv.start()
    sm = srv.client("sagemaker")
    time.sleep(0.5)
    assert sm.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"] == "Executing"
    step = steps_of(sm, arn)["Wait"]
    assert step["StepStatus"] == "Executing" and step["Metadata"]["Callback"]["CallbackToken"] == token
    sm.send_pipeline_execution_step_success(CallbackToken=token, OutputParameters=[
        {"Name": "score", "Value": "0.9"}, {"Name": "note", "Value": "fine"}])
    desc = wait_status(sm, arn)
    assert desc["PipelineExecutionStatus"] == "Succeeded", steps_of(sm, arn)
    assert set(steps_of(sm, arn)) == {"Wait", "Judge"}


@pytest.mark.slow
def test_running_lambda_is_run_again_after_a_crash(fresh_server: StratumServer, tmp_path: Path) -> None:
    srv = fresh_server
    arns = register_functions(srv, tmp_path)
    sm = srv.client("sagemaker")
    counter = tmp_path / "crash-count"
    name = create_pipeline(srv, steps=[
        {"Name": "Count", "Type": "Lambda", "FunctionArn": arns["counted"],
         "Arguments": {"counter": str(counter)}},
        {"Name": "Slow", "Type": "Lambda", "FunctionArn": arns["sleepy"], "DependsOn": ["Count"],
         "Arguments": {"seconds": 3}},
        {"Name": "Done", "Type": "Fail", "DependsOn": ["Slow"], "Arguments": {"ErrorMessage": "finished"}},
    ])
    arn = sm.start_pipeline_execution(PipelineName=name)["PipelineExecutionArn"]
    wait_step(sm, arn, "Slow", ("Executing",))
    srv.kill()
    srv.start()
    sm = srv.client("sagemaker")
    desc = wait_status(sm, arn, timeout=60)
    assert desc["FailureReason"] == "finished"
    steps = steps_of(sm, arn)
    assert steps["Slow"]["StepStatus"] == "Succeeded" and steps["Count"]["StepStatus"] == "Succeeded"
    assert counter.read_text() == "1"  # finished steps are not run again


def test_functions_cli_lists_and_deletes(server: StratumServer, tmp_path: Path) -> None:
    base = [sys.executable, "-m", "stratum.cli", "lambda"]
    db = ["--data-dir", str(server.data_dir)] + (["--database-url", server.database_url]
                                                 if server.database_url else [])
    fn = _uid("fn")
    out = subprocess.run([*base, "register", *db, "--account", "dev", "--name", fn, "--command",
                          "cat", "--timeout", "5"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = subprocess.run([*base, "list", *db, "--account", "dev"], capture_output=True, text=True, timeout=120)
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    mine = [e for e in entries if e["FunctionArn"].endswith(f":function:{fn}")]
    assert mine and mine[0]["Handler"] == "cat" and mine[0]["Runtime"] == "provided.al2023"
    assert mine[0]["Timeout"] == 5
    # One mechanism: the function the CLI declared is a Lambda function of the Lambda API.
    lam = server.client("lambda")
    assert lam.get_function_configuration(FunctionName=fn)["Timeout"] == 5
    out = lam.invoke(FunctionName=fn, Payload=b'{"echo": 1}')
    assert "FunctionError" not in out and json.loads(out["Payload"].read()) == {"echo": 1}
    bad = subprocess.run([*base, "register", *db, "--account", "dev", "--name", fn], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "exactly one of 'handler' or 'command'" in bad.stderr
    gone = subprocess.run([*base, "delete", *db, "--account", "dev", "--name", fn], capture_output=True, text=True,
                          timeout=120)
    assert gone.returncode == 0
    with pytest.raises(ClientError):
        lam.get_function(FunctionName=fn)
