"""Lambda's pure logic: FunctionName forms and qualifiers, AddPermission statements, configuration
checks; and the runtime's execution environments (warm reuse, timeout, recycling) on a real
worker process."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from stratum.functions.environments import Environment, EnvironmentKey, Pool
from stratum.protocol.errors import ServiceError
from stratum.services.lambda_ import configs, permissions
from stratum.services.lambda_.code import store_zip, task_root, zip_directory
from stratum.services.lambda_.names import parse_function_name, parse_resource_arn

ACCOUNT, REGION = "111122223333", "us-east-1"


def test_function_name_forms() -> None:
    ref = parse_function_name("fn", ACCOUNT, REGION)
    assert (ref.account_id, ref.name, ref.qualifier, ref.arn) == (ACCOUNT, "fn", None,
                                                                  f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn")
    assert parse_function_name("fn:prod", ACCOUNT, REGION).qualified_arn.endswith(":function:fn:prod")
    assert parse_function_name("fn", ACCOUNT, REGION, "3").qualifier == "3"
    other = parse_function_name("444455556666:function:fn:$LATEST", ACCOUNT, REGION)
    assert (other.account_id, other.qualifier) == ("444455556666", "$LATEST")
    full = parse_function_name(f"arn:aws:lambda:{REGION}:444455556666:function:fn:7", ACCOUNT, REGION)
    assert (full.account_id, full.name, full.qualifier) == ("444455556666", "fn", "7")
    for bad, qualifier in (("fn:1", "2"), ("bad name", None), (f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:fn", None)):
        with pytest.raises(ServiceError) as exc:
            parse_function_name(bad, ACCOUNT, REGION, qualifier)
        assert exc.value.code == "InvalidParameterValueException"
    with pytest.raises(ServiceError):
        parse_function_name("fn:1", ACCOUNT, REGION, allow_qualifier=False)
    with pytest.raises(ServiceError):
        parse_resource_arn(f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn:1", REGION)


def test_add_permission_statements_as_lambda_writes_them() -> None:
    resource = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
    rule = permissions.statement({"StatementId": "ev", "Action": "lambda:InvokeFunction",
                                  "Principal": "events.amazonaws.com", "SourceArn": "arn:aws:events:x:1:rule/r",
                                  "SourceAccount": ACCOUNT}, resource)
    assert rule == {"Sid": "ev", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "lambda:InvokeFunction", "Resource": resource,
                    "Condition": {"StringEquals": {"AWS:SourceAccount": ACCOUNT},
                                  "ArnLike": {"AWS:SourceArn": "arn:aws:events:x:1:rule/r"}}}
    account = permissions.statement({"StatementId": "a", "Action": "lambda:*", "Principal": "444455556666"},
                                    resource)
    assert account["Principal"] == {"AWS": "arn:aws:iam::444455556666:root"} and "Condition" not in account
    statements = permissions.add([], rule)
    with pytest.raises(ServiceError) as exc:
        permissions.add(statements, rule)
    assert exc.value.code == "ResourceConflictException"
    with pytest.raises(ServiceError) as exc:
        permissions.remove(statements, "nope", resource)
    assert exc.value.code == "ResourceNotFoundException"
    assert permissions.remove(statements, "ev", resource) == []
    assert json.loads(permissions.document(statements))["Statement"] == [rule]
    with pytest.raises(ServiceError):
        permissions.statement({"StatementId": "x", "Action": "s3:GetObject", "Principal": "*"}, resource)


def test_alias_routing_weights() -> None:
    from stratum.services.lambda_.catalog import weighted_version

    alias = {"function_version": "1", "routing_config": {"AdditionalVersionWeights": {"2": 0.25}}}
    assert [weighted_version(alias, d) for d in (0.0, 0.24, 0.25, 0.9)] == ["2", "2", "1", "1"]
    assert weighted_version({"function_version": "3", "routing_config": None}) == "3"


def test_configuration_checks() -> None:
    config = configs.apply(configs.defaults("fn"), {"Runtime": "python3.12", "Handler": "app.handler",
                                                    "Timeout": 30, "MemorySize": 512,
                                                    "Environment": {"Variables": {"A": "1"}}}, "fn")
    assert (config["Timeout"], config["MemorySize"], config["Environment"]) == (30, 512, {"Variables": {"A": "1"}})
    assert config["State"] == "Active" and config["LoggingConfig"]["LogGroup"] == "/aws/lambda/fn"
    for bad in ({"Runtime": "nodejs20.x"}, {"Timeout": 901}, {"MemorySize": 64},
                {"Environment": {"Variables": {"AWS_REGION": "x"}}}, {"Role": "not-an-arn"}):
        with pytest.raises(ServiceError) as exc:
            configs.apply(config, bad, "fn")
        assert exc.value.code == "InvalidParameterValueException"


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_code_is_stored_once_and_unpacked(tmp_path: Path) -> None:
    data = _zip({"app.py": "X = 1\n", "pkg/mod.py": "Y = 2\n"})
    sha, size = store_zip(tmp_path, data)
    assert store_zip(tmp_path, data) == (sha, size) == (sha, len(data))
    root = task_root(tmp_path, sha)
    assert (root / "pkg" / "mod.py").read_text() == "Y = 2\n"
    with pytest.raises(ServiceError):
        store_zip(tmp_path, b"not a zip")
    (tmp_path / "src" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("")
    (tmp_path / "src" / "__pycache__" / "a.pyc").write_text("")
    assert zipfile.ZipFile(io.BytesIO(zip_directory(tmp_path / "src"))).namelist() == ["a.py"]


def _environment(tmp_path: Path, source: str, revision: str = "r1") -> Environment:
    root = tmp_path / "task"
    root.mkdir(exist_ok=True)
    (root / "app.py").write_text(source)
    env = {"PATH": "/usr/bin:/bin", "_HANDLER": "app.handler", "LAMBDA_TASK_ROOT": str(root),
           "PYTHONPATH": str(root), "AWS_LAMBDA_FUNCTION_NAME": "fn"}
    return Environment(EnvironmentKey(ACCOUNT, REGION, "fn", "$LATEST", revision), env, str(root),
                       tmp_path / "log.txt", "stream")


SOURCE = "import os, time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n" \
         "    if event.get('fail'):\n        raise KeyError('k')\n    return {'pid': os.getpid(), 'e': event}\n"


def test_environments_stay_warm_time_out_and_recycle(tmp_path: Path) -> None:
    pool = Pool(idle_seconds=60, max_age_seconds=600)
    key = EnvironmentKey(ACCOUNT, REGION, "fn", "$LATEST", "r1")
    try:
        env, cold = pool.acquire(key, lambda: _environment(tmp_path, SOURCE))
        first = env.invoke({"id": "1"}, b'{"a": 1}', 5)
        assert cold and first.ok and first.init_ms is not None
        pool.release(env)
        again, cold = pool.acquire(key, lambda: _environment(tmp_path, SOURCE))
        second = again.invoke({"id": "2"}, b"{}", 5)
        assert not cold and again is env and json.loads(second.body)["pid"] == json.loads(first.body)["pid"]
        failed = again.invoke({"id": "3"}, b'{"fail": 1}', 5)
        assert not failed.ok and json.loads(failed.body)["errorType"] == "KeyError"
        slow = again.invoke({"id": "4"}, b'{"sleep": 5}', 0.5)
        assert slow.timed_out and not again.alive()
        pool.release(again)
        fresh, cold = pool.acquire(key, lambda: _environment(tmp_path, SOURCE))
        assert cold and fresh is not env
        pool.release(fresh)
        newer = EnvironmentKey(ACCOUNT, REGION, "fn", "$LATEST", "r2")
        replaced, cold = pool.acquire(newer, lambda: _environment(tmp_path, SOURCE, "r2"))
        assert cold and not fresh.alive()  # the old configuration's idle environment was recycled
        pool.release(replaced)
        pool.idle_seconds = 0
        pool.reap()
        assert not replaced.alive()
    finally:
        pool.close()
    assert "KeyError" in (tmp_path / "log.txt").read_text()


def test_invoke_entry_point_for_service_principals(tmp_path: Path) -> None:
    """What EventBridge targets call: invoke() as events.amazonaws.com, allowed only by the
    function's resource policy (with the rule as aws:SourceArn)."""
    from engine_testing import engine_app
    from sqlalchemy import select

    from stratum.engine.functions import FunctionSpec, register
    from stratum.functions import ServicePrincipal, invoke
    from stratum.services.lambda_ import catalog
    from stratum.services.lambda_.names import FunctionRef
    from stratum.services.lambda_.tables import lambda_event_queue

    code = tmp_path / "code"
    code.mkdir()
    (code / "app.py").write_text("def handler(event, context):\n    return {'got': event}\n")
    rule = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/approved"
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fn"
    with engine_app(tmp_path / "data", poll_seconds=3600) as app:
        with app.db.begin() as conn:
            register(conn, FunctionSpec(ACCOUNT, REGION, "fn", handler="app:handler", code_path=str(code)),
                     tmp_path / "data")
        events = ServicePrincipal("events.amazonaws.com", source_arn=rule, source_account=ACCOUNT)
        with pytest.raises(ServiceError) as exc:
            invoke(app, arn, b"{}", "RequestResponse", events)
        assert exc.value.code == "AccessDeniedException"
        statement = permissions.statement({"StatementId": "rule", "Action": "lambda:InvokeFunction",
                                           "Principal": "events.amazonaws.com", "SourceArn": rule}, arn)
        with app.db.begin() as conn:
            catalog.update_function(conn, FunctionRef(ACCOUNT, REGION, "fn", None), policy=[statement])
        result = invoke(app, arn, b'{"a": 1}', "RequestResponse", events)
        assert (result.status_code, result.function_error) == (200, None)
        assert json.loads(result.payload) == {"got": {"a": 1}} and result.executed_version == "$LATEST"
        other_rule = ServicePrincipal("events.amazonaws.com", source_arn=rule + "-other")
        with pytest.raises(ServiceError):
            invoke(app, arn, b"{}", "RequestResponse", other_rule)
        assert invoke(app, arn, b"{}", "DryRun", events).status_code == 204
        queued = invoke(app, arn, b'{"b": 2}', "Event", events)
        assert queued.status_code == 202
        with app.db.read() as conn:
            rows = conn.execute(select(lambda_event_queue)).mappings().all()
        assert [(r["request_id"], bytes(r["payload"])) for r in rows] == [(queued.request_id, b'{"b": 2}')]
        with pytest.raises(ServiceError) as exc:
            invoke(app, arn + "-missing", b"{}", "RequestResponse", events)
        assert exc.value.code == "AccessDeniedException"  # no policy to allow it: nothing is revealed
