"""The RegisterModel and Model step handlers against an in-process database."""

from __future__ import annotations

import json
import re
import sys
import threading
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stratum.engine.handlers import StepRun
from stratum.policy import parse_policy
from stratum.protocol.errors import ServiceError
from stratum.services.sagemaker.registry import store
from stratum.services.sagemaker.registry.refs import GroupRef, PackageRef
from stratum.services.sagemaker.registry.steps import (
    jsonable,
    model_name_for,
    run_model_step,
    run_register_model_step,
)
from stratum.store.db import Database
from stratum.store.schema import load_all_tables

SPOKE, HUB, REGION = "111111111111", "222222222222", "us-east-1"
ROLE = f"arn:aws:iam::{SPOKE}:role/pipeline-role"
SPEC = {"Containers": [{"Image": "img:1", "ModelDataUrl": "s3://b/model.tar.gz"}],
        "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]}


class FakeAuthorizer:
    """The role's identity policies, as the real Authorizer would load them from IAM."""

    def __init__(self, documents: list[dict[str, Any]]) -> None:
        self.policies = tuple(parse_policy(json.dumps(d)) for d in documents)

    def principal_policies(self, account: str, kind: str, name: str) -> tuple[tuple[Any, ...], None]:
        assert (account, kind, name) == (SPOKE, "role", "pipeline-role")
        return self.policies, None


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'registry.db'}")
    with database.begin() as conn:
        load_all_tables().create_all(conn)
    yield database
    database.dispose()


def step_run(db: Database, arguments: dict[str, Any], step: str = "Register", execution: str = "abc123def456",
             step_type: str = "RegisterModel", authorizer: Any = None) -> StepRun:
    pipeline_arn = f"arn:aws:sagemaker:{REGION}:{SPOKE}:pipeline/build"
    return StepRun(app=SimpleNamespace(db=db, authorizer=authorizer), account_id=SPOKE, region=REGION,
                   pipeline_name="build", pipeline_arn=pipeline_arn, execution_id=execution,
                   execution_arn=f"{pipeline_arn}/execution/{execution}", role_arn=ROLE, step_name=step,
                   step_type=step_type, arguments=arguments, raw={}, attempt=1, stop_event=threading.Event())


def test_model_names_fit_createmodel_and_are_stable_per_step(db: Database) -> None:
    name = model_name_for(step_run(db, {}, step="Make_Model step!", step_type="Model"))
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name)
    assert name.startswith("pipelines-abc123def456-Make-Model-step-")
    assert name == model_name_for(step_run(db, {}, step="Make_Model step!", step_type="Model"))
    assert name != model_name_for(step_run(db, {}, step="Other", step_type="Model"))
    long = model_name_for(step_run(db, {}, step="S" * 200, step_type="Model"))
    assert len(long) == 63 and re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", long)


def test_jsonable_turns_timestamps_into_text() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert jsonable({"A": when, "B": [when], "C": None, "D": {"E": 1}}) == {
        "A": "2024-05-01T12:00:00Z", "B": ["2024-05-01T12:00:00Z"], "D": {"E": 1}}


def test_register_creates_the_group_then_versions(db: Database) -> None:
    args = {"ModelPackageGroupName": "Churn", "InferenceSpecification": SPEC,
            "ModelApprovalStatus": "Approved", "MetadataProperties": {"CommitId": "c0ffee"}}
    first = run_register_model_step(step_run(db, args))
    assert first.status == "Succeeded", first.failure_reason
    assert first.metadata == {"RegisterModel": {"Arn": f"arn:aws:sagemaker:{REGION}:{SPOKE}:model-package/churn/1"}}
    assert first.properties["ModelApprovalStatus"] == "Approved"
    assert first.properties["MetadataProperties"] == {
        "CommitId": "c0ffee", "GeneratedBy": f"arn:aws:sagemaker:{REGION}:{SPOKE}:pipeline/build/execution/abc123def456"}
    json.dumps(first.properties)  # what the engine stores
    assert run_register_model_step(step_run(db, args)).metadata == first.metadata  # re-run: same version
    second = run_register_model_step(step_run(db, args, execution="zzz999yyy888"))
    assert second.metadata["RegisterModel"]["Arn"].endswith("/churn/2")
    with db.read() as conn:
        group = store.get_group(conn, GroupRef(SPOKE, REGION, "churn"))
        assert group is not None and group.name == "Churn" and group.last_version == 2
        version = store.get_package(conn, PackageRef(SPOKE, REGION, "Churn", 2))
        assert version is not None and version.created_by["IamIdentity"]["Arn"].endswith(
            ":assumed-role/pipeline-role/SageMaker")


@pytest.mark.parametrize("arguments, fragment", [
    ({"InferenceSpecification": SPEC}, "Missing ARN."),
    ({"ModelPackageGroupName": "g", "ModelApprovalStatus": "Maybe"}, "enum value set"),
    ({"ModelPackageGroupName": "g", "Tags": [{"Key": "a", "Value": "b"}]}, "Tags cannot be specified"),
])
def test_register_reports_bad_arguments_as_a_failed_step(db: Database, arguments: dict[str, Any],
                                                         fragment: str) -> None:
    result = run_register_model_step(step_run(db, arguments))
    assert result.status == "Failed" and fragment in (result.failure_reason or "")


def _hub_group(db: Database) -> None:
    with db.begin() as conn:
        store.create_group(conn, account=HUB, region=REGION, name="Central", description=None, tags=[],
                           managed=None, created_by=None, now=datetime.now(UTC))


def test_register_into_another_accounts_group_needs_its_policy_and_the_roles(db: Database) -> None:
    hub_arn = f"arn:aws:sagemaker:{REGION}:{HUB}:model-package-group/Central"
    args = {"ModelPackageGroupName": hub_arn, "InferenceSpecification": SPEC}
    allow_all = FakeAuthorizer([{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}]}])

    missing = run_register_model_step(step_run(db, args, authorizer=allow_all))
    assert missing.status == "Failed" and "Model Package Group does not exist." in (missing.failure_reason or "")

    _hub_group(db)
    denied = run_register_model_step(step_run(db, args, authorizer=allow_all))
    assert denied.status == "Failed" and "AccessDeniedException" in (denied.failure_reason or "")

    with db.begin() as conn:
        group = store.get_group(conn, GroupRef(HUB, REGION, "Central"))
        assert group is not None
        store.set_group_policy(conn, group, json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ROLE}, "Action": "sagemaker:CreateModelPackage",
             "Resource": f"arn:aws:sagemaker:{REGION}:{HUB}:model-package/central/*"}]}))
    no_role_permission = run_register_model_step(step_run(db, args, authorizer=FakeAuthorizer([])))
    assert no_role_permission.status == "Failed"
    allowed = run_register_model_step(step_run(db, args, authorizer=allow_all))
    assert allowed.status == "Succeeded", allowed.failure_reason
    assert allowed.metadata["RegisterModel"]["Arn"] == f"arn:aws:sagemaker:{REGION}:{HUB}:model-package/central/1"


def test_model_step_creates_the_model_through_jobs_models(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's contract with stratum.jobs.models (create_model / describe_model)."""
    created: dict[str, dict[str, Any]] = {}

    def create_model(database: Database, account: str, region: str, request: dict[str, Any],
                     access: Any = None) -> dict[str, Any]:
        assert database is db and (account, region) == (SPOKE, REGION)
        arn = f"arn:aws:sagemaker:{region}:{account}:model/{request['ModelName'].lower()}"
        created[request["ModelName"]] = {**request, "ModelArn": arn, "CreationTime": datetime.now(UTC)}
        return {"ModelArn": arn}

    def describe_model(database: Database, account: str, region: str, name: str) -> dict[str, Any]:
        if name not in created:
            raise ServiceError("ValidationException", f"Could not find model \"{name}\".")
        return created[name]

    fake = types.ModuleType("stratum.jobs.models")
    fake.create_model = create_model  # type: ignore[attr-defined]
    fake.describe_model = describe_model  # type: ignore[attr-defined]
    fake.public = lambda description: description  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stratum.jobs.models", fake)
    try:
        import stratum.jobs as jobs_package
    except ModuleNotFoundError:  # the contract test must not depend on the jobs package existing
        jobs_package = types.ModuleType("stratum.jobs")
        monkeypatch.setitem(sys.modules, "stratum.jobs", jobs_package)
    monkeypatch.setattr(jobs_package, "models", fake, raising=False)

    args = {"ExecutionRoleArn": ROLE, "PrimaryContainer": {"Image": "img:1", "ModelDataUrl": "s3://b/m.tar.gz"}}
    result = run_model_step(step_run(db, args, step="Make-CreateModel", step_type="Model"))
    assert result.status == "Succeeded", result.failure_reason
    (name,) = created
    assert name.startswith("pipelines-abc123def456-Make-CreateModel-")
    assert result.metadata == {"Model": {"Arn": created[name]["ModelArn"]}}
    assert result.properties["ModelName"] == name and isinstance(result.properties["CreationTime"], str)
    # A re-run finds the model it made instead of creating another.
    assert run_model_step(step_run(db, args, step="Make-CreateModel", step_type="Model")).metadata == result.metadata
    assert len(created) == 1
    bad = run_model_step(step_run(db, {"PrimaryContainer": "nope"}, step="Bad", step_type="Model"))
    assert bad.status == "Failed"
