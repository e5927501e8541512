"""Lambda layers through the unmodified boto3 lambda client: publish, read, list, delete; a
function whose handler imports a library packaged in a layer (python/ and
python/lib/<runtime>/site-packages, a later layer overriding an earlier one), layers shared with
another account through AddLayerVersionPermission, and the AWS errors."""

from __future__ import annotations

import io
import json
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from stratum_testing import BACKENDS, StratumServer, close_server, make_server
from test_lambda import _code, lambda_role, zip_of

HANDLER = '''
import os
import greeting
import shared

def handler(event, context):
    return {"greeting": greeting.hello(event["name"]), "shared": shared.WHO,
            "tool": os.path.exists(os.path.join(os.environ["STRATUM_LAMBDA_OPT"], "bin", "tool"))}
'''


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    srv = make_server(tmp_path_factory, request.param).start()
    try:
        yield srv
    finally:
        close_server(srv)


def publish(client: Any, name: str, files: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    return dict(client.publish_layer_version(LayerName=name, Content={"ZipFile": zip_of(files)},
                                             CompatibleRuntimes=["python3.11"], **kwargs))


def test_publish_read_list_and_delete(server: StratumServer) -> None:
    client = server.client("lambda")
    account = server.account_id("dev")
    name = f"libs-{uuid.uuid4().hex[:8]}"
    first = publish(client, name, {"python/greeting.py": "def hello(n):\n    return 'v1 ' + n\n"},
                    Description="first", LicenseInfo="MIT")
    assert first["LayerArn"] == f"arn:aws:lambda:us-east-1:{account}:layer:{name}"
    assert first["LayerVersionArn"] == first["LayerArn"] + ":1" and first["Version"] == 1
    assert first["Description"] == "first" and first["LicenseInfo"] == "MIT"
    assert first["CompatibleRuntimes"] == ["python3.11"] and first["Content"]["CodeSize"] > 0
    with urllib.request.urlopen(first["Content"]["Location"], timeout=10) as r:
        assert zipfile.ZipFile(io.BytesIO(r.read())).namelist() == ["python/greeting.py"]
    second = publish(client, name, {"python/greeting.py": "def hello(n):\n    return 'v2 ' + n\n"})
    assert second["Version"] == 2

    got = client.get_layer_version(LayerName=name, VersionNumber=1)
    assert got["LayerVersionArn"] == first["LayerVersionArn"] and got["Content"]["CodeSha256"] == \
        first["Content"]["CodeSha256"]
    assert client.get_layer_version_by_arn(Arn=second["LayerVersionArn"])["Version"] == 2
    versions = client.list_layer_versions(LayerName=name)["LayerVersions"]
    assert [v["Version"] for v in versions] == [2, 1]
    listed = {item["LayerName"]: item for item in client.list_layers()["Layers"]}
    assert listed[name]["LatestMatchingVersion"]["Version"] == 2
    assert name not in {i["LayerName"] for i in client.list_layers(CompatibleRuntime="python3.12")["Layers"]}

    client.delete_layer_version(LayerName=name, VersionNumber=2)
    client.delete_layer_version(LayerName=name, VersionNumber=2)  # deleting again succeeds, as on AWS
    assert [v["Version"] for v in client.list_layer_versions(LayerName=name)["LayerVersions"]] == [1]
    # A deleted number is never given again.
    assert publish(client, name, {"python/greeting.py": "x = 1\n"})["Version"] == 3
    with pytest.raises(ClientError) as exc:
        client.get_layer_version(LayerName=name, VersionNumber=2)
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        client.publish_layer_version(LayerName=name, Content={"ZipFile": b"not a zip"})
    assert _code(exc) == "InvalidParameterValueException"


def test_function_imports_from_its_layers_in_order(server: StratumServer) -> None:
    client = server.client("lambda")
    base = publish(client, f"base-{uuid.uuid4().hex[:6]}", {
        "python/greeting.py": "def hello(n):\n    return 'old ' + n\n",
        "python/lib/python3.11/site-packages/shared.py": "WHO = 'base'\n", "bin/tool": "#!/bin/sh\n"})
    override = publish(client, f"override-{uuid.uuid4().hex[:6]}", {
        "python/greeting.py": "def hello(n):\n    return 'hello ' + n\n"})
    name = f"fn-{uuid.uuid4().hex[:8]}"
    created = client.create_function(FunctionName=name, Runtime="python3.11", Role=lambda_role(server),
                                     Handler="app.handler", Code={"ZipFile": zip_of({"app.py": HANDLER})},
                                     Layers=[base["LayerVersionArn"], override["LayerVersionArn"]])
    assert [layer["Arn"] for layer in created["Layers"]] == [base["LayerVersionArn"], override["LayerVersionArn"]]
    assert all(layer["CodeSize"] > 0 for layer in created["Layers"])
    client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    out = client.invoke(FunctionName=name, Payload=json.dumps({"name": "ana"}).encode())
    assert "FunctionError" not in out, out["Payload"].read()
    assert json.loads(out["Payload"].read()) == {"greeting": "hello ana", "shared": "base", "tool": True}

    # Without the overriding layer the first one's module answers; with no layers the import fails.
    client.update_function_configuration(FunctionName=name, Layers=[base["LayerVersionArn"]])
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    assert json.loads(client.invoke(FunctionName=name, Payload=b'{"name": "bo"}')["Payload"].read())["greeting"] == \
        "old bo"
    config = client.update_function_configuration(FunctionName=name, Layers=[])
    assert "Layers" not in config
    out = client.invoke(FunctionName=name, Payload=b'{"name": "cy"}')
    assert out["FunctionError"] == "Unhandled"
    assert "No module named 'greeting'" in json.loads(out["Payload"].read())["errorMessage"]


def test_layers_across_accounts_need_a_permission(server: StratumServer) -> None:
    owner, user = server.client("lambda", "dev"), server.client("lambda", "prod")
    layer = publish(owner, f"team-{uuid.uuid4().hex[:6]}", {
        "python/greeting.py": "def hello(n):\n    return 'shared ' + n\n",
        "python/shared.py": "WHO = 'dev'\n"})
    arn = layer["LayerVersionArn"]
    role = lambda_role(server, account="prod")
    params = {"Runtime": "python3.11", "Role": role, "Handler": "app.handler",
              "Code": {"ZipFile": zip_of({"app.py": HANDLER})}, "Layers": [arn]}
    with pytest.raises(ClientError) as exc:
        user.get_layer_version_by_arn(Arn=arn)
    assert _code(exc) == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:
        user.create_function(FunctionName=f"fn-{uuid.uuid4().hex[:8]}", **params)
    assert _code(exc) == "AccessDeniedException" and "lambda:GetLayerVersion" in str(exc.value)

    prod = server.account_id("prod")
    added = owner.add_layer_version_permission(LayerName=layer["LayerArn"], VersionNumber=1, StatementId="prod",
                                               Action="lambda:GetLayerVersion", Principal=prod)
    statement = json.loads(added["Statement"])
    assert statement["Principal"] == {"AWS": f"arn:aws:iam::{prod}:root"} and statement["Resource"] == arn
    policy = json.loads(owner.get_layer_version_policy(LayerName=layer["LayerArn"], VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["prod"]
    with pytest.raises(ClientError) as exc:
        owner.add_layer_version_permission(LayerName=layer["LayerArn"], VersionNumber=1, StatementId="prod",
                                           Action="lambda:GetLayerVersion", Principal=prod)
    assert _code(exc) == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        owner.add_layer_version_permission(LayerName=layer["LayerArn"], VersionNumber=1, StatementId="bad",
                                           Action="lambda:InvokeFunction", Principal=prod)
    assert _code(exc) == "ValidationException"  # the model's pattern, as Lambda's front end answers it

    assert user.get_layer_version_by_arn(Arn=arn)["Version"] == 1
    name = f"fn-{uuid.uuid4().hex[:8]}"
    user.create_function(FunctionName=name, **params)
    user.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    result = json.loads(user.invoke(FunctionName=name, Payload=b'{"name": "zoe"}')["Payload"].read())
    assert result["greeting"] == "shared zoe" and result["shared"] == "dev"

    owner.remove_layer_version_permission(LayerName=layer["LayerArn"], VersionNumber=1, StatementId="prod")
    with pytest.raises(ClientError) as exc:
        owner.get_layer_version_policy(LayerName=layer["LayerArn"], VersionNumber=1)
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        user.get_layer_version_by_arn(Arn=arn)
    assert _code(exc) == "AccessDeniedException"


def test_function_layer_errors(server: StratumServer) -> None:
    client = server.client("lambda")
    account = server.account_id("dev")
    base = {"Runtime": "python3.11", "Role": lambda_role(server), "Handler": "app.handler",
            "Code": {"ZipFile": zip_of({"app.py": HANDLER})}}
    missing = f"arn:aws:lambda:us-east-1:{account}:layer:nothing-{uuid.uuid4().hex[:6]}:1"
    with pytest.raises(ClientError) as exc:
        client.create_function(FunctionName=f"fn-{uuid.uuid4().hex[:8]}", Layers=[missing], **base)
    assert _code(exc) == "InvalidParameterValueException"
    assert exc.value.response["Error"]["Message"] == f"Layer version {missing} does not exist."
    layer = publish(client, f"one-{uuid.uuid4().hex[:6]}", {"python/a.py": ""})
    again = publish(client, layer["LayerArn"], {"python/b.py": ""})
    with pytest.raises(ClientError) as exc:
        client.create_function(FunctionName=f"fn-{uuid.uuid4().hex[:8]}",
                               Layers=[layer["LayerVersionArn"], again["LayerVersionArn"]], **base)
    assert _code(exc) == "InvalidParameterValueException"
    with pytest.raises(ClientError) as exc:
        client.create_function(FunctionName=f"fn-{uuid.uuid4().hex[:8]}", Layers=["not-an-arn"], **base)
    assert _code(exc) == "ValidationException"
