"""check_pass_role with role validation (what job and model creation use), in process against a
real migrated database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratum.auth.passrole import check_pass_role
from stratum.config import Settings
from stratum.protocol.errors import ServiceError
from stratum.protocol.http import HttpRequest
from stratum.server.app_state import AppState
from stratum.server.context import RequestContext
from stratum.server.runner import prepare
from stratum.services.iam import store as iam
from stratum.services.organizations.accounts import default_admin_identity


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppState]:
    state = prepare(Settings(data_dir=Path(tmp_path_factory.mktemp("passrole"))))
    yield state
    state.db.dispose()


def _ctx(app: AppState) -> RequestContext:
    return RequestContext(app, "req", "sagemaker", "CreateTrainingJob", "us-east-1", default_admin_identity(app),
                          HttpRequest("POST", "/", "", {}))


def _role(app: AppState, name: str, service: str, path: str = "/", source_account: str | None = None) -> str:
    statement: dict[str, object] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if source_account:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": source_account}}
    ctx = _ctx(app)
    with app.db.begin() as conn:
        row = iam.create_role(conn, ctx.account_id, name, json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
                              path=path)
    return str(row["arn"])


def _validation_message(ctx: RequestContext, role_arn: str) -> str:
    with pytest.raises(ServiceError) as err:
        check_pass_role(ctx, role_arn, associated_resource_arn="arn:aws:sagemaker:us-east-1:1:training-job/x")
    assert err.value.code == "ValidationException"
    return err.value.message


def test_trusted_role_passes(app: AppState) -> None:
    ctx = _ctx(app)
    check_pass_role(ctx, _role(app, "trusted", "sagemaker.amazonaws.com"))
    assert ctx.authorized


def test_missing_role_uses_sagemaker_wording(app: AppState) -> None:
    ctx = _ctx(app)
    arn = f"arn:aws:iam::{ctx.account_id}:role/nope"
    assert _validation_message(ctx, arn) == (
        f"Could not assume role {arn}. Please ensure that the role exists and allows principal "
        "'sagemaker.amazonaws.com' to assume the role.")


def test_role_that_does_not_trust_sagemaker(app: AppState) -> None:
    ctx = _ctx(app)
    assert "Could not assume role" in _validation_message(ctx, _role(app, "ec2-only", "ec2.amazonaws.com"))


def test_role_path_must_match(app: AppState) -> None:
    ctx = _ctx(app)
    arn = _role(app, "pathed", "sagemaker.amazonaws.com", path="/service-role/")
    check_pass_role(ctx, arn)
    assert "Could not assume role" in _validation_message(ctx, arn.replace("/service-role/", "/"))


def test_confused_deputy_condition_sees_the_calling_account(app: AppState) -> None:
    ctx = _ctx(app)
    check_pass_role(ctx, _role(app, "mine-only", "sagemaker.amazonaws.com", source_account=ctx.account_id))
    other = _role(app, "others-only", "sagemaker.amazonaws.com", source_account="999999999999")
    assert "Could not assume role" in _validation_message(ctx, other)


def test_malformed_arn(app: AppState) -> None:
    with pytest.raises(ServiceError) as err:
        check_pass_role(_ctx(app), "arn:aws:iam::123:role/x")
    assert err.value.code == "ValidationException"
