"""Notebook instances through boto3 and the AWS CLI: statuses, errors, lifecycle scripts, the
JupyterLab server behind a presigned URL, and a restart of Stratum."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError
from stratum_testing import StratumServer, sagemaker_role

WAIT = {"Delay": 1, "MaxAttempts": 120}


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def create(sm: Any, name: str, role: str, **extra: Any) -> dict[str, Any]:
    sm.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=role, **extra)
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    return sm.describe_notebook_instance(NotebookInstanceName=name)


def stop(sm: Any, name: str) -> None:
    sm.stop_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)


def delete(sm: Any, name: str) -> None:
    sm.delete_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_deleted").wait(NotebookInstanceName=name, WaiterConfig=WAIT)


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


@pytest.mark.slow
def test_lifecycle_statuses_and_errors(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    role = sagemaker_role(server, "nb")
    name = uid("nb")
    described = create(sm, name, role, VolumeSizeInGB=7, Tags=[{"Key": "team", "Value": "ml"}])
    arn = described["NotebookInstanceArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:{server.account_id('dev')}:notebook-instance/{name}"
    assert described["NotebookInstanceStatus"] == "InService"
    assert described["VolumeSizeInGB"] == 7 and described["RoleArn"] == role
    assert described["DirectInternetAccess"] == "Enabled" and described["RootAccess"] == "Enabled"
    assert f"/_stratum/notebooks/{server.account_id('dev')}/us-east-1/{name}" in described["Url"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "ml"}]

    # AWS's state rules, with its messages.
    code, message = error_of(sm.delete_notebook_instance, NotebookInstanceName=name)
    assert code == "ValidationException"
    assert message == (f"Status (InService) not in ([Stopped, Failed]). Unable to transition to (Deleting) for "
                       f"Notebook Instance ({arn}).")
    code, message = error_of(sm.update_notebook_instance, NotebookInstanceName=name, VolumeSizeInGB=10)
    assert code == "ValidationException" and "Unable to transition to (Updating)" in message
    code, message = error_of(sm.start_notebook_instance, NotebookInstanceName=name)
    assert "Status (InService) not in ([Stopped, Failed])" in message
    code, message = error_of(sm.create_notebook_instance, NotebookInstanceName=name, InstanceType="ml.t3.medium",
                             RoleArn=role)
    assert code == "ValidationException" and "duplicate" in message

    stop(sm, name)
    assert sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"] == "Stopped"
    assert "Url" not in sm.describe_notebook_instance(NotebookInstanceName=name)
    code, message = error_of(sm.stop_notebook_instance, NotebookInstanceName=name)
    assert message.startswith("Status (Stopped) not in ([InService])")

    other_role = sagemaker_role(server, "nb2")
    sm.update_notebook_instance(NotebookInstanceName=name, VolumeSizeInGB=10, RoleArn=other_role)
    assert sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"] in ("Updating", "Stopped")
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    d = sm.describe_notebook_instance(NotebookInstanceName=name)
    assert d["VolumeSizeInGB"] == 10 and d["RoleArn"] == other_role
    code, _ = error_of(sm.update_notebook_instance, NotebookInstanceName=name, VolumeSizeInGB=8)
    assert code == "ValidationException"  # a volume only grows
    assert d["InstanceMetadataServiceConfiguration"] == {"MinimumInstanceMetadataServiceVersion": "1"}

    delete(sm, name)
    code, message = error_of(sm.describe_notebook_instance, NotebookInstanceName=name)
    assert (code, message) == ("ValidationException", "RecordNotFound")


def test_create_refusals(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    iam = server.client("iam")
    role_name = uid("notrust")
    untrusted = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    code, message = error_of(sm.create_notebook_instance, NotebookInstanceName=uid("nb"), InstanceType="ml.t3.medium",
                             RoleArn=untrusted)
    assert code == "ValidationException"
    assert message == (f"Could not assume role {untrusted}. Please ensure that the role exists and allows principal "
                       "'sagemaker.amazonaws.com' to assume the role.")
    role = sagemaker_role(server, "nb")
    code, message = error_of(sm.create_notebook_instance, NotebookInstanceName=uid("nb"), InstanceType="ml.t3.medium",
                             RoleArn=role, LifecycleConfigName="missing-config")
    assert code == "ValidationException" and "missing-config' does not exist" in message
    code, message = error_of(sm.describe_notebook_instance_lifecycle_config,
                             NotebookInstanceLifecycleConfigName="missing-config")
    assert code == "ValidationException" and "does not exist" in message
    code, _ = error_of(sm.create_notebook_instance, NotebookInstanceName=uid("nb"), InstanceType="ml.t3.medium",
                       RoleArn=role, PlatformIdentifier="notebook-al1-v1")
    assert code == "ValidationException"


def test_lifecycle_configs_and_code_repositories(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    names = [uid("lcc") for _ in range(3)]
    for name in names:
        arn = sm.create_notebook_instance_lifecycle_config(
            NotebookInstanceLifecycleConfigName=name, OnStart=[{"Content": b64("echo start\n")}],
            Tags=[{"Key": "k", "Value": name}])["NotebookInstanceLifecycleConfigArn"]
        assert arn.endswith(f":notebook-instance-lifecycle-config/{name}")
        assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "k", "Value": name}]
    d = sm.describe_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=names[0])
    assert d["OnStart"] == [{"Content": b64("echo start\n")}] and "OnCreate" not in d
    sm.update_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=names[0],
                                                 OnCreate=[{"Content": b64("echo create\n")}])
    d = sm.describe_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=names[0])
    assert d["OnCreate"] == [{"Content": b64("echo create\n")}]
    code, _ = error_of(sm.create_notebook_instance_lifecycle_config, NotebookInstanceLifecycleConfigName=names[0])
    assert code == "ValidationException"
    code, _ = error_of(sm.create_notebook_instance_lifecycle_config, NotebookInstanceLifecycleConfigName=uid("bad"),
                       OnStart=[{"Content": "not base64!"}])
    assert code == "ValidationException"
    common = names[0].split("-")[0]
    pages = sm.get_paginator("list_notebook_instance_lifecycle_configs").paginate(
        NameContains=common, SortBy="Name", SortOrder="Descending", PaginationConfig={"PageSize": 2})
    listed = [c["NotebookInstanceLifecycleConfigName"] for p in pages for c in p["NotebookInstanceLifecycleConfigs"]]
    assert [n for n in listed if n in names] == sorted(names, reverse=True)
    sm.delete_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=names[2])
    code, _ = error_of(sm.describe_notebook_instance_lifecycle_config, NotebookInstanceLifecycleConfigName=names[2])
    assert code == "ValidationException"

    repo = uid("repo")
    arn = sm.create_code_repository(CodeRepositoryName=repo, GitConfig={
        "RepositoryUrl": "https://example.com/org/project.git", "Branch": "main"})["CodeRepositoryArn"]
    assert arn.endswith(f":code-repository/{repo}")
    d = sm.describe_code_repository(CodeRepositoryName=repo)
    assert d["GitConfig"] == {"RepositoryUrl": "https://example.com/org/project.git", "Branch": "main"}
    assert repo in [r["CodeRepositoryName"] for r in sm.list_code_repositories(NameContains=repo)
                    ["CodeRepositorySummaryList"]]
    code, _ = error_of(sm.describe_code_repository, CodeRepositoryName=uid("missing"))
    assert code == "ValidationException"


@pytest.mark.slow
def test_lifecycle_scripts_logs_and_failure(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    logs = server.client("logs")
    role = sagemaker_role(server, "nb")
    config = uid("lcc")
    on_create = ("#!/bin/bash\nset -e\necho created-$(whoami) > /home/ec2-user/SageMaker/created.txt\n"
                 "jq -r .ResourceName /opt/ml/metadata/resource-metadata.json\n")
    on_start = ("#!/bin/bash\nset -e\necho started >> /home/ec2-user/SageMaker/starts.txt\n"
                "aws sts get-caller-identity --query Arn --output text\n"
                "sudo -u ec2-user nohup bash -c 'sleep 1; touch /home/ec2-user/SageMaker/background.txt' "
                ">/dev/null 2>&1 &\n")
    sm.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=config,
                                                 OnCreate=[{"Content": b64(on_create)}],
                                                 OnStart=[{"Content": b64(on_start)}])
    name = uid("nb")
    create(sm, name, role, LifecycleConfigName=config)
    group = "/aws/sagemaker/NotebookInstances"

    def events(stream: str) -> list[str]:
        return [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=f"{name}/{stream}",
                                                          startFromHead=True)["events"]]

    assert events("LifecycleConfigOnCreate") == [name]
    role_name = role.rsplit("/", 1)[1]
    assert events("LifecycleConfigOnStart") == [
        f"arn:aws:sts::{server.account_id('dev')}:assumed-role/{role_name}/SageMaker"]
    stop(sm, name)
    sm.start_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    assert len(events("LifecycleConfigOnStart")) == 2  # OnStart at every start, OnCreate once
    assert events("LifecycleConfigOnCreate") == [name]
    stop(sm, name)

    failing = uid("lcc")
    sm.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=failing,
                                                 OnStart=[{"Content": b64("echo about to fail\nexit 3\n")}])
    sm.update_notebook_instance(NotebookInstanceName=name, LifecycleConfigName=failing)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    sm.start_notebook_instance(NotebookInstanceName=name)
    with pytest.raises(WaiterError):
        sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    d = sm.describe_notebook_instance(NotebookInstanceName=name)
    assert d["NotebookInstanceStatus"] == "Failed"
    assert failing in d["FailureReason"] and "failure" in d["FailureReason"]
    sm.update_notebook_instance(NotebookInstanceName=name, DisassociateLifecycleConfig=True)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    assert "NotebookInstanceLifecycleConfigName" not in sm.describe_notebook_instance(NotebookInstanceName=name)
    delete(sm, name)


def test_cli_list_filters_and_sort(server: StratumServer) -> None:
    sm = server.client("sagemaker")
    out = server.aws_cli("sagemaker", "list-notebook-instances", "--status-equals", "InService",
                         "--sort-by", "CreationTime", "--sort-order", "Descending")
    listed = json.loads(out.stdout)["NotebookInstances"]
    assert all(i["NotebookInstanceStatus"] == "InService" for i in listed)
    times = [i["CreationTime"] for i in listed]
    assert times == sorted(times, reverse=True)
    assert sm.list_notebook_instances(NameContains=uid("none"))["NotebookInstances"] == []


def _open(url: str) -> Any:
    import httpx

    client = httpx.Client(follow_redirects=True, timeout=30)
    page = client.get(url)
    return client, page


def _run_cell(base_ws: str, cookie: str, kernel_id: str, code: str) -> str:
    from websockets.sync.client import connect

    msg_id = uuid.uuid4().hex
    request = {"header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type":
                          "execute_request", "version": "5.3"}, "parent_header": {}, "metadata": {},
               "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                           "allow_stdin": False, "stop_on_error": True}, "channel": "shell", "buffers": []}
    output: list[str] = []
    with connect(f"{base_ws}/api/kernels/{kernel_id}/channels", additional_headers={"Cookie": cookie},
                 open_timeout=30) as ws:
        ws.send(json.dumps(request))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=120))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                output.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                output.append("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    return "".join(output)


@pytest.mark.slow
def test_presigned_url_kernel_as_role_and_restart(fresh_server: StratumServer) -> None:
    from stratum.config import Settings
    from stratum.notebooks import urls

    server = fresh_server
    sm = server.client("sagemaker")
    role = sagemaker_role(server, "nb")
    name = uid("nb")
    create(sm, name, role)
    url = sm.create_presigned_notebook_instance_url(NotebookInstanceName=name,
                                                    SessionExpirationDurationInSeconds=1800)["AuthorizedUrl"]
    base = url.split("?", 1)[0]
    import httpx

    # Without a session nothing reaches Jupyter; a tampered or expired URL is refused.
    assert httpx.get(f"{base}/lab", timeout=30).status_code == 403
    assert httpx.get(f"{base}/api/kernels", timeout=30).status_code == 403
    token = url.split("authToken=", 1)[1]
    body, mac = token.split(".")
    tampered = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    assert httpx.get(f"{base}?authToken={tampered}", timeout=30).status_code == 403
    payload = urls.verify(Settings(data_dir=server.data_dir), token)
    assert payload is not None
    expired = urls.sign(Settings(data_dir=server.data_dir), {**payload, "e": int(time.time()) - 1})
    page = httpx.get(f"{base}?authToken={expired}", timeout=30)
    assert page.status_code == 403 and "expired" in page.text

    client, page = _open(url)
    assert page.status_code == 200 and "JupyterLab" in page.text, page.text[:500]
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    kernel = client.post(f"{base}/api/kernels", json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    base_ws = "ws://" + base.split("://", 1)[1]
    out = _run_cell(base_ws, cookie, kernel.json()["id"],
                    "import boto3, os\nprint(boto3.client('sts').get_caller_identity()['Arn'])\n"
                    "open('/home/ec2-user/SageMaker/kept.txt', 'w').write('kept')\nprint(os.getcwd())\n")
    role_name = role.rsplit("/", 1)[1]
    assert f"arn:aws:sts::{server.account_id('dev')}:assumed-role/{role_name}/SageMaker" in out, out
    assert "/home/ec2-user/SageMaker" in out
    # The SDK finds the instance's role through /opt/ml/metadata and DescribeNotebookInstance, and
    # its default bucket through the defaults file in ~/.config/sagemaker, with no configuration.
    out = _run_cell(base_ws, cookie, kernel.json()["id"],
                    "import sagemaker\nprint('ROLE', sagemaker.get_execution_role())\n"
                    "print('BUCKET', sagemaker.Session().default_bucket())\n")
    assert f"ROLE {role}" in out, out
    assert f"BUCKET sagemaker-us-east-1-{server.account_id('dev')}" in out, out
    pipeline = uid("nb-pipeline")
    out = _run_cell(base_ws, cookie, kernel.json()["id"], (
        "import sagemaker\n"
        "from sagemaker.workflow.pipeline import Pipeline\n"
        "from sagemaker.workflow.condition_step import ConditionStep\n"
        "from sagemaker.workflow.conditions import ConditionEquals\n"
        "from sagemaker.workflow.parameters import ParameterInteger\n"
        "x = ParameterInteger(name='X', default_value=1)\n"
        "check = ConditionStep(name='Check', conditions=[ConditionEquals(left=x, right=1)], if_steps=[], else_steps=[])\n"
        f"p = Pipeline(name='{pipeline}', parameters=[x], steps=[check])\n"
        "p.upsert(role_arn=sagemaker.get_execution_role())\n"
        "execution = p.start()\n"
        "execution.wait(delay=1, max_attempts=60)\n"
        "print('STATUS', execution.describe()['PipelineExecutionStatus'])\n"))
    assert "STATUS Succeeded" in out, out
    assert sm.describe_pipeline(PipelineName=pipeline)["RoleArn"] == role

    server.kill()  # kill -9: JupyterLab is orphaned; the next start serves the instance again
    server.start()
    sm = server.client("sagemaker")
    deadline = time.monotonic() + 60
    while True:
        url = sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"]
        client, page = _open(url)
        if page.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.status_code == 200 and "JupyterLab" in page.text
    assert sm.describe_notebook_instance(NotebookInstanceName=name)["NotebookInstanceStatus"] == "InService"
    content = client.get(f"{base}/api/contents/kept.txt", params={"content": "1"})
    assert content.status_code == 200 and content.json()["content"] == "kept"
    stop(sm, name)
    sm.start_notebook_instance(NotebookInstanceName=name)
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    client, page = _open(sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"])
    assert client.get(f"{base}/api/contents/kept.txt", params={"content": "1"}).json()["content"] == "kept"
    stop(sm, name)
    delete(sm, name)


SAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "data" / "notebook-lifecycle-samples"


def _volume(server: StratumServer, name: str) -> Any:
    for meta in (server.data_dir / "notebooks").glob("*/ml/metadata/resource-metadata.json"):
        if json.loads(meta.read_text())["ResourceName"] == name:
            return meta.parents[2] / "volume"
    raise AssertionError(f"no volume for {name}")


def _files(root: Any) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name not in ("BACKUP_COMPLETE", "SYNC_COMPLETE") and ".ipynb_checkpoints" not in str(p)}


@pytest.mark.slow
def test_backup_and_sync_migration_with_the_sample_scripts(server: StratumServer) -> None:
    """The public samples, unmodified: OnStart backs the source volume up to the bucket named by its
    tag, OnCreate of a new instance syncs the snapshot named by its tags into its volume."""
    sm = server.client("sagemaker")
    s3 = server.client("s3")
    role = sagemaker_role(server, "nb")
    bucket = uid("sagemaker-ebs-backup")
    s3.create_bucket(Bucket=bucket)
    seed = uid("lcc")
    sm.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=seed, OnCreate=[{"Content": b64(
        "set -e\ncd /home/ec2-user/SageMaker\nmkdir -p project/data\nhead -c 200000 /dev/urandom > project/data/blob.bin\n"
        "printf '{\"cells\": []}' > project/analysis.ipynb\necho 'print(1)' > train.py\n"
        "chown -R ec2-user:ec2-user project train.py\n")}])
    source = uid("source")
    create(sm, source, role, LifecycleConfigName=seed,
           Tags=[{"Key": "ebs-backup-bucket", "Value": bucket}])
    written = _files(_volume(server, source))
    assert set(written) == {"project/data/blob.bin", "project/analysis.ipynb", "train.py"}
    stop(sm, source)

    backup = uid("backup")
    sm.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=backup, OnStart=[{
        "Content": base64.b64encode((SAMPLES / "migrate-ebs-data-backup" / "on-start.sh").read_bytes()).decode()}])
    sm.update_notebook_instance(NotebookInstanceName=source, LifecycleConfigName=backup)
    sm.get_waiter("notebook_instance_stopped").wait(NotebookInstanceName=source, WaiterConfig=WAIT)
    sm.start_notebook_instance(NotebookInstanceName=source)
    sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=source, WaiterConfig=WAIT)
    deadline = time.monotonic() + 180
    snapshot = None
    while time.monotonic() < deadline and snapshot is None:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{source}_").get("Contents", [])]
        snapshot = next((k.split("/")[0] for k in keys if k.endswith("/BACKUP_COMPLETE")), None)
        time.sleep(1)
    assert snapshot is not None, (_volume(server, source).parent / "home" / "nohup.out").read_text()

    sync = uid("sync")
    sm.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=sync, OnCreate=[{
        "Content": base64.b64encode((SAMPLES / "migrate-ebs-data-sync" / "on-create.sh").read_bytes()).decode()}])
    target = uid("target")
    create(sm, target, role, LifecycleConfigName=sync, PlatformIdentifier="notebook-al2-v3",
           Tags=[{"Key": "ebs-backup-bucket", "Value": bucket}, {"Key": "backup-snapshot", "Value": snapshot}])
    volume = _volume(server, target)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not (volume / "SYNC_COMPLETE").exists():
        time.sleep(1)
    assert (volume / "SYNC_COMPLETE").exists(), (volume.parent / "home" / "nohup.out").read_text()
    assert _files(volume) == written  # byte-identical
    for name in (source, target):
        stop(sm, name)
        delete(sm, name)


@pytest.mark.slow
def test_presigned_url_is_authorized_when_opened(server: StratumServer) -> None:
    """The URL's creator needs sagemaker:CreatePresignedNotebookInstanceUrl, and still needs it, with
    the browser's aws:SourceIp, when the URL is opened."""
    import httpx

    sm = server.client("sagemaker")
    iam = server.client("iam")
    role = sagemaker_role(server, "nb")
    name = uid("nb")
    arn = create(sm, name, role)["NotebookInstanceArn"]
    user = uid("analyst")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    user_sm = server.client("sagemaker", aws_access_key_id=key["AccessKeyId"],
                            aws_secret_access_key=key["SecretAccessKey"])
    code, _ = error_of(user_sm.create_presigned_notebook_instance_url, NotebookInstanceName=name)
    assert code == "AccessDeniedException"
    iam.put_user_policy(UserName=user, PolicyName="open", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sagemaker:CreatePresignedNotebookInstanceUrl", "Resource": arn,
            "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}))
    first = user_sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"]
    second = user_sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"]
    assert httpx.get(first, follow_redirects=True, timeout=30).status_code == 200
    # Only from another address from now on: the URL made before is refused when opened here.
    iam.put_user_policy(UserName=user, PolicyName="open", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sagemaker:CreatePresignedNotebookInstanceUrl", "Resource": arn,
            "Condition": {"IpAddress": {"aws:SourceIp": "10.1.2.3/32"}}}]}))
    deadline = time.monotonic() + 30  # identity caches follow IAM writes
    while True:
        page = httpx.get(second, follow_redirects=True, timeout=30)
        if page.status_code == 403 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.status_code == 403 and "Access denied" in page.text
    stop(sm, name)
    delete(sm, name)


@pytest.fixture(params=["sqlite"])
def short_lifecycle_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                           monkeypatch: pytest.MonkeyPatch) -> Any:
    from stratum_testing import close_server, make_server

    monkeypatch.setenv("STRATUM_NOTEBOOK_LIFECYCLE_TIMEOUT", "3")
    srv = make_server(tmp_path_factory, request.param)
    srv.start()
    yield srv
    close_server(srv)


@pytest.mark.slow
def test_lifecycle_script_over_its_limit_fails_the_instance(short_lifecycle_server: StratumServer) -> None:
    server = short_lifecycle_server
    sm = server.client("sagemaker")
    role = sagemaker_role(server, "nb")
    config = uid("lcc")
    config_arn = sm.create_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName=config,
        OnCreate=[{"Content": b64("echo working\nsleep 60\n")}])["NotebookInstanceLifecycleConfigArn"]
    name = uid("nb")
    sm.create_notebook_instance(NotebookInstanceName=name, InstanceType="ml.t3.medium", RoleArn=role,
                                LifecycleConfigName=config)
    started = time.monotonic()
    with pytest.raises(WaiterError):
        sm.get_waiter("notebook_instance_in_service").wait(NotebookInstanceName=name, WaiterConfig=WAIT)
    assert time.monotonic() - started < 30
    d = sm.describe_notebook_instance(NotebookInstanceName=name)
    assert d["NotebookInstanceStatus"] == "Failed"
    assert d["FailureReason"] == (f"Notebook Instance Lifecycle Config '{config_arn}' for Notebook Instance "
                                  f"'{d['NotebookInstanceArn']}' took longer than 5 minutes. Please check your "
                                  "CloudWatch logs for more details if your Notebook Instance has Internet access.")
    events = server.client("logs").get_log_events(logGroupName="/aws/sagemaker/NotebookInstances",
                                                  logStreamName=f"{name}/LifecycleConfigOnCreate")["events"]
    assert [e["message"] for e in events] == ["working"]
    delete(sm, name)


def _https_git_server(root: Any) -> tuple[Any, str, Any]:
    """Bare repositories under ``root`` served over HTTPS (git's dumb HTTP protocol) with a
    self-signed certificate for 127.0.0.1; returns (server, base URL, certificate path)."""
    import datetime
    import functools
    import http.server
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = root / "cert.pem", root / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "git"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"https://127.0.0.1:{httpd.server_address[1]}", cert_path


def _bare_repository(root: Any, name: str, files: dict[str, str]) -> None:
    import subprocess

    work = root / "work" / name
    work.mkdir(parents=True)
    for path, text in files.items():
        (work / path).write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-q", "-m", "first"], check=True)
    bare = root / "git" / f"{name}.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "update-server-info"], check=True)


@pytest.fixture
def git_server(tmp_path: Any, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    from stratum_testing import close_server, make_server

    _bare_repository(tmp_path, "project", {"README.md": "# project\n"})
    _bare_repository(tmp_path, "extra", {"notes.txt": "extra\n"})
    httpd, base, cert = _https_git_server(tmp_path)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))  # git's own setting: the server's clones trust it
    srv = make_server(tmp_path_factory, "sqlite")
    srv.start()
    yield srv, base
    close_server(srv)
    httpd.shutdown()


@pytest.mark.slow
def test_code_repositories_are_cloned_at_creation(git_server: Any) -> None:
    server, base = git_server
    sm = server.client("sagemaker")
    role = sagemaker_role(server, "nb")
    repo = uid("repo")
    sm.create_code_repository(CodeRepositoryName=repo, GitConfig={"RepositoryUrl": f"{base}/project.git",
                                                                    "Branch": "main"})
    name = uid("nb")
    d = create(sm, name, role, DefaultCodeRepository=repo, AdditionalCodeRepositories=[f"{base}/extra.git"])
    assert d["DefaultCodeRepository"] == repo and d["AdditionalCodeRepositories"] == [f"{base}/extra.git"]
    listed = sm.list_notebook_instances(DefaultCodeRepositoryContains=repo)["NotebookInstances"]
    assert [i["NotebookInstanceName"] for i in listed] == [name]
    volume = _volume(server, name)
    assert (volume / "project" / "README.md").read_text() == "# project\n"
    assert (volume / "extra" / "notes.txt").read_text() == "extra\n"
    assert (volume / "project" / "README.md").stat().st_uid != 0  # ec2-user's, as the volume
    code, _ = error_of(sm.create_notebook_instance, NotebookInstanceName=uid("nb"), InstanceType="ml.t3.medium",
                       RoleArn=role, DefaultCodeRepository=uid("missing"))
    assert code == "ValidationException"
    stop(sm, name)
    delete(sm, name)


@pytest.fixture
def plain_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    from stratum_testing import close_server, make_server

    monkeypatch.setenv("STRATUM_NOTEBOOK_ISOLATION", "plain")
    srv = make_server(tmp_path_factory, "sqlite")
    srv.start()
    yield srv
    close_server(srv)


@pytest.mark.slow
def test_without_a_mount_namespace(plain_server: StratumServer) -> None:
    """The fallback for hosts without root: no /home/ec2-user, but the volume is $HOME/SageMaker,
    scripts have the role's credentials and JupyterLab is served."""
    import httpx

    server = plain_server
    sm = server.client("sagemaker")
    role = sagemaker_role(server, "nb")
    config = uid("lcc")
    sm.create_notebook_instance_lifecycle_config(NotebookInstanceLifecycleConfigName=config, OnStart=[{"Content": b64(
        "set -e\necho hello > $HOME/SageMaker/hello.txt\naws sts get-caller-identity --query Arn --output text\n")}])
    name = uid("nb")
    create(sm, name, role, LifecycleConfigName=config)
    assert (_volume(server, name) / "hello.txt").read_text() == "hello\n"
    url = sm.create_presigned_notebook_instance_url(NotebookInstanceName=name)["AuthorizedUrl"]
    client = httpx.Client(follow_redirects=True, timeout=30)
    assert client.get(url).status_code == 200
    listing = client.get(url.split("?")[0] + "/api/contents")
    assert "hello.txt" in [c["name"] for c in listing.json()["content"]]
    events = server.client("logs").get_log_events(logGroupName="/aws/sagemaker/NotebookInstances",
                                                  logStreamName=f"{name}/LifecycleConfigOnStart")["events"]
    assert [e["message"] for e in events][-1].endswith(f"/{role.rsplit('/', 1)[1]}/SageMaker")
    stop(sm, name)
    delete(sm, name)
