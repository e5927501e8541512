"""The `stratum` CLI, generated AWS CLI profiles, bootstrap files and the opt-in permissive mode."""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from stratum_testing import BACKENDS, PG_ADMIN_URL, StratumServer, drop_pg_database


def _profile_env(server: StratumServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["AWS_CONFIG_FILE"] = str(server.data_dir / "aws" / "config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(server.data_dir / "aws" / "credentials")
    return env


def _stratum(server: StratumServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "stratum.cli", *args, "--data-dir", str(server.data_dir)]
    if server.database_url:
        cmd += ["--database-url", server.database_url]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=120)


def test_generated_profiles_work_with_aws_cli_and_boto3(server: StratumServer) -> None:
    env = _profile_env(server)
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    out = subprocess.run([aws, "--profile", "test", "sts", "get-caller-identity"], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout)["Account"] == server.account_id("test")
    out = subprocess.run([aws, "--profile", "dev", "sagemaker", "list-pipelines"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "PipelineSummaries" in json.loads(out.stdout)
    old = {k: os.environ.get(k) for k in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")}
    os.environ.update({k: env[k] for k in old})
    try:
        for name in ("dev", "test", "prod", "shared-services", "hub"):
            ident = boto3.Session(profile_name=name).client("sts").get_caller_identity()
            assert ident["Arn"] == f"arn:aws:iam::{server.account_id(name)}:user/admin"
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_cli_creates_accounts_and_keys_the_server_accepts(server: StratumServer) -> None:
    name = "cli-" + os.urandom(3).hex()
    created = json.loads(_stratum(server, "accounts", "create", "--name", name).stdout)
    assert len(created["AccountId"]) == 12
    listed = _stratum(server, "accounts", "list").stdout
    assert f"{created['AccountId']}  {name}" in listed
    sts = server.client("sts", aws_access_key_id=created["AccessKeyId"],
                        aws_secret_access_key=created["SecretAccessKey"])
    assert sts.get_caller_identity()["Account"] == created["AccountId"]
    key = json.loads(_stratum(server, "keys", "create", "--account", name).stdout)
    sts2 = server.client("sts", aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
    assert sts2.get_caller_identity()["Arn"].endswith(":user/admin")
    # `stratum profiles` adds the new account, for the endpoint the server recorded (its real port).
    assert f"[{name}]" not in (server.data_dir / "aws" / "credentials").read_text()
    out = _stratum(server, "profiles").stdout
    config, creds = server.data_dir / "aws" / "config", server.data_dir / "aws" / "credentials"
    assert out.strip() == (f"export AWS_CONFIG_FILE={config} AWS_SHARED_CREDENTIALS_FILE={creds} "
                           f"SAGEMAKER_ADMIN_CONFIG_OVERRIDE={config.parent / 'sagemaker' / 'default.yaml'}")
    assert f"[{name}]" in creds.read_text()
    assert _endpoints(config) == {server.endpoint_url}
    env = _profile_env(server)
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    ident = subprocess.run([aws, "--profile", name, "sts", "get-caller-identity"], env=env,
                           capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(ident.stdout)["Account"] == created["AccountId"]


def _endpoints(config: Path) -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(config)
    return {parser[s]["endpoint_url"] for s in parser.sections()} | {parser.defaults().get("endpoint_url", "")} - {""}


def test_management_commands_leave_the_profiles_alone(server: StratumServer) -> None:
    config, creds = server.data_dir / "aws" / "config", server.data_dir / "aws" / "credentials"
    before = (config.read_text(), creds.read_text())
    assert _endpoints(config) == {server.endpoint_url}
    for args in (["accounts", "list"], ["keys", "list", "--account", "dev"], ["lambda", "list"],
                 ["db", "upgrade"]):
        out = _stratum(server, *args, check=False)
        assert out.returncode == 0, (args, out.stderr)
    assert (config.read_text(), creds.read_text()) == before


def _one_line_error(out: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    """A user error: a non-zero exit code and one line on stderr, no traceback."""
    assert out.returncode != 0, out.stdout
    if code is not None:
        assert out.returncode == code, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stratum: "), out.stderr
    return lines[0]


def test_user_errors_are_one_line_and_an_exit_code(server: StratumServer, tmp_path: Path) -> None:
    name = "dup-" + os.urandom(3).hex()
    _stratum(server, "accounts", "create", "--name", name)
    line = _one_line_error(_stratum(server, "accounts", "create", "--name", name, check=False))
    assert f"An account named '{name}' already exists" in line
    line = _one_line_error(_stratum(server, "keys", "create", "--account", name, "--user", "nobody", check=False))
    assert "nobody" in line
    line = _one_line_error(_stratum(server, "keys", "list", "--account", "no-such-account", check=False), 2)
    assert "no such account: no-such-account" in line
    line = _one_line_error(_stratum(server, "accounts", "create", check=False), 2)
    assert "--name" in line
    # A database URL that is not one.
    bad = _run_cli("accounts", "list", "--data-dir", str(tmp_path), "--database-url", "not a url")
    assert "bad database URL" in _one_line_error(bad, 2)
    bad = _run_cli("accounts", "list", "--data-dir", str(tmp_path), "--database-url", "mysql://u@h/db")
    assert "SQLite or PostgreSQL" in _one_line_error(bad, 2)
    # A bootstrap file that cannot be read or is not YAML: refused before the server starts.
    broken = tmp_path / "broken.yaml"
    broken.write_text("accounts: [\n")
    for path in (broken, tmp_path / "missing.yaml"):
        out = _run_cli("serve", "--data-dir", str(tmp_path / "data"), "--port", "0", "--bootstrap", str(path))
        assert str(path) in _one_line_error(out, 2)
    assert not (tmp_path / "data").exists()


def test_lambda_and_logs_errors_are_one_line_too(server: StratumServer, tmp_path: Path) -> None:
    for args, words in ((["lambda", "register", "--account", "dev"], "--account and --name are required"),
                        (["lambda", "register", "--account", "no-such", "--name", "f", "--handler", "m:f"],
                         "No such account: no-such"),
                        (["lambda", "delete", "--account", "dev", "--name", "no-such-fn"], "No function no-such-fn"),
                        (["lambda", "register", "--account", "dev", "--name", "f", "--handler", "m:f",
                          "--env", "NOEQUALS"], "--env needs KEY=VALUE"),
                        (["lambda", "register", "--account", "dev", "--name", "f", "--handler", "m:f",
                          "--role", "admin"], "role must be an IAM role ARN"),
                        (["logs", "no-such-job"], "no processing, training or transform job named no-such-job")):
        assert words in _one_line_error(_stratum(server, *args, check=False)), args
    # A functions file that is not YAML, or whose values have the wrong type: one line naming the file.
    for name, text, words in (("broken.yaml", "functions: [\n", "Cannot read functions file"),
                              ("timeout.yaml", "functions:\n  - {name: f, account: dev, handler: 'm:f', "
                                               "timeout: soon}\n", "'timeout' must be a whole number"),
                              ("env.yaml", "functions:\n  - {name: f, account: dev, handler: 'm:f', "
                                           "environment: [A]}\n", "'environment' must be a mapping")):
        path = tmp_path / name
        path.write_text(text)
        line = _one_line_error(_stratum(server, "lambda", "load", str(path), check=False), 2)
        assert str(path) in line and words in line, line


def test_profiles_refuses_an_endpoint_or_directory_it_cannot_use(server: StratumServer, tmp_path: Path) -> None:
    config = server.data_dir / "aws" / "config"
    before = config.read_text()
    for url in ("not-a-url", "ftp://127.0.0.1:1", "http://127.0.0.1:99999", "http://127.0.0.1:1/path"):
        line = _one_line_error(_stratum(server, "profiles", "--endpoint-url", url, check=False), 2)
        assert f"--endpoint-url must be http://HOST:PORT (or https://), got {url!r}" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _one_line_error(_stratum(server, "profiles", "--aws-dir", str(blocker / "aws"), check=False), 2)
    assert f"cannot write the AWS CLI files in {blocker / 'aws'}" in line
    assert config.read_text() == before  # nothing was rewritten
    line = _one_line_error(_stratum(server, "accounts", "create", "--name", "mail-" + os.urandom(3).hex(),
                                    "--email", "not-an-address", check=False), 1)
    assert "Invalid email address 'not-an-address'" in line


def test_serve_with_unusable_paths_is_refused_in_one_line(tmp_path: Path) -> None:
    """A data directory, objects directory or master key file that cannot be made (a file stands
    where a directory must be): one line naming it, no traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for args, words in ((["--data-dir", str(blocker)], f"cannot use the data directory {blocker}"),
                        (["--data-dir", str(blocker / "data")], f"cannot use the data directory {blocker / 'data'}"),
                        (["--data-dir", str(tmp_path / "d1"), "--objects-dir", str(blocker / "objects")],
                         f"cannot use the objects directory {blocker / 'objects'}"),
                        (["--data-dir", str(tmp_path / "d2"), "--master-key-file", str(blocker / "master.key")],
                         f"cannot read or create the master key {blocker / 'master.key'}"),
                        (["--data-dir", str(tmp_path / "d3"), "--aws-dir", str(blocker / "aws")],
                         f"cannot use the directory of the AWS CLI files {blocker / 'aws'}")):
        out = _run_cli("serve", "--port", "0", *args, cwd=tmp_path)
        errors = [line for line in out.stderr.splitlines() if line.startswith("stratum: ")]
        assert out.returncode != 0 and len(errors) == 1 and words in errors[0], out.stderr[-2000:]
        assert "Traceback" not in out.stderr, out.stderr[-2000:]


def test_serve_refuses_settings_no_server_can_run_with(tmp_path: Path) -> None:
    """A port the profiles would name but nothing listens on, a lease that never lasts, a number
    that is not one, a network or job images file that is missing or not YAML: one line, before
    anything is created."""
    network = tmp_path / "network.yaml"
    network.write_text("vpc_endpoints: [\n")
    images, entries = tmp_path / "images.yaml", tmp_path / "entries.yaml"
    images.write_text("images: [\n")
    entries.write_text("images:\n  - match: '*/mine:*'\n    runtime: docker\n")
    for args, extra_env, words in (
            (["--port", "70000"], {}, "the port must be 0-65535, got 70000"),
            (["--port", "0", "--lease-seconds", "-1"], {}, "lease-seconds must be more than 0"),
            (["--port", "0"], {"STRATUM_PORT": "x"}, "STRATUM_PORT must be a whole number, got 'x'"),
            (["--port", "0"], {"STRATUM_LEASE_SECONDS": "soon"}, "STRATUM_LEASE_SECONDS must be a number"),
            (["--port", "0"], {"STRATUM_JOB_WORKERS": "0"}, "STRATUM_JOB_WORKERS must be at least 1"),
            (["--port", "0", "--network", str(network)], {}, f"{network}: not valid YAML"),
            (["--port", "0"], {"STRATUM_JOB_IMAGES": str(tmp_path / "none.yaml")},
             f"{tmp_path / 'none.yaml'}: the job images file (STRATUM_JOB_IMAGES) does not exist"),
            (["--port", "0"], {"STRATUM_JOB_IMAGES": str(images)}, f"{images}: not YAML"),
            (["--port", "0"], {"STRATUM_JOB_IMAGES": str(entries)}, "every image entry needs 'match' and a 'runtime'")):
        out = _run_cli("serve", "--data-dir", str(tmp_path / "data"), *args, cwd=tmp_path,
                       env=_clean_env(**extra_env))
        assert words in _one_line_error(out, 2), (args, extra_env)
    assert not (tmp_path / "data").exists()


def test_python_dash_m_stratum_is_the_command() -> None:
    out = subprocess.run([sys.executable, "-m", "stratum", "--version"], capture_output=True, text=True,
                         timeout=60, env=_clean_env())
    assert out.returncode == 0 and out.stdout.startswith("stratum "), out.stderr


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without STRATUM_*, importing this checkout's stratum from any directory."""
    import stratum

    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUM_")}
    source = str(Path(stratum.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**env, **extra}


def _run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = _clean_env()
    return subprocess.run([sys.executable, "-m", "stratum.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def test_commands_without_stratum_data_say_so(tmp_path: Path) -> None:
    env = _clean_env()
    # The default (./stratum-data), the environment and the flag find the data the same way.
    for how, extra_env, extra_args in (("default", {}, []), ("env", {"STRATUM_DATA_DIR": "elsewhere"}, []),
                                       ("flag", {}, ["--data-dir", "elsewhere"])):
        out = _run_cli("accounts", "list", *extra_args, cwd=tmp_path, env={**env, **extra_env})
        where = tmp_path / ("stratum-data" if how == "default" else "elsewhere")
        assert f"no Stratum data in {where}:" in _one_line_error(out, 1), how
    for args in (["accounts", "create", "--name", "x"], ["keys", "create", "--account", "dev"], ["profiles"],
                 ["lambda", "list"], ["logs", "job"]):
        line = _one_line_error(_run_cli(*args, cwd=tmp_path, env=env), 1)
        assert f"no Stratum data in {tmp_path / 'stratum-data'}:" in line, (args, line)
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_version_and_help_for_every_command_and_flag() -> None:
    from stratum import cli

    out = _run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip().startswith("stratum ")
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helped = {c.dest for c in subparsers._choices_actions if c.help}
    assert helped == set(subparsers.choices)
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            assert action.help, f"stratum {name} {action.option_strings or action.dest} has no help"
    out = _run_cli("serve", "--help")
    assert out.returncode == 0 and "--data-dir" in out.stdout and "--ray-token-file" in out.stdout


class Served:
    """`stratum serve` started as a user would (relative paths, a port the system picks)."""

    def __init__(self, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.cwd = cwd
        self.out = cwd / f"serve-{os.urandom(3).hex()}.out"
        env = env or _clean_env()
        with open(self.out, "wb") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "stratum.cli", "serve", "--port", "0", *args],
                                         stdout=fh, stderr=subprocess.STDOUT, cwd=cwd, env=env)

    def banner(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self.out.read_text()
            if "Stratum listening on" in text and "aws --profile" in text:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {text}")
            time.sleep(0.1)
        raise AssertionError(f"no banner: {self.out.read_text()}")

    def endpoint(self) -> str:
        return re.search(r"Stratum listening on (http://\S+)", self.banner()).group(1)  # type: ignore[union-attr]

    def wait(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=60)
        return code, self.out.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def test_serve_prints_absolute_paths_and_writes_profiles_for_its_real_port(tmp_path: Path) -> None:
    served = Served(tmp_path, "--data-dir", "data")
    try:
        banner, endpoint = served.banner(), served.endpoint()
        data = tmp_path / "data"
        assert f"(data: {data})" in banner
        assert f"objects: {data / 'objects'}  master key: {data / 'master.key'}" in banner
        assert f"export AWS_CONFIG_FILE={data / 'aws' / 'config'} " \
               f"AWS_SHARED_CREDENTIALS_FILE={data / 'aws' / 'credentials'}" in banner
        assert not endpoint.endswith(":4747") and not endpoint.endswith(":0")
        assert _endpoints(data / "aws" / "config") == {endpoint}
        # `profiles` from another directory, with a relative --data-dir: absolute paths, the recorded endpoint.
        other = tmp_path / "elsewhere"
        other.mkdir()
        out = _run_cli("profiles", "--data-dir", "../data", "--aws-dir", "aws", cwd=other)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == (f"export AWS_CONFIG_FILE={other / 'aws' / 'config'} "
                                      f"AWS_SHARED_CREDENTIALS_FILE={other / 'aws' / 'credentials'} "
                                      f"SAGEMAKER_ADMIN_CONFIG_OVERRIDE={other / 'aws' / 'sagemaker' / 'default.yaml'}")
        assert (other / "aws" / "sagemaker" / "default.yaml").is_file()
        assert _endpoints(other / "aws" / "config") == {endpoint}
        out = _run_cli("profiles", "--data-dir", "../data", "--aws-dir", "aws", "--endpoint-url",
                       "http://127.0.0.1:9", cwd=other)
        assert out.returncode == 0 and _endpoints(other / "aws" / "config") == {"http://127.0.0.1:9"}
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE=str(data / "aws" / "config"), AWS_SHARED_CREDENTIALS_FILE=str(data / "aws" / "credentials"))
        aws = os.path.join(os.path.dirname(sys.executable), "aws")
        ident = subprocess.run([aws, "--profile", "dev", "sts", "get-caller-identity"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert ident.returncode == 0, ident.stderr
    finally:
        served.stop()


def test_a_bootstrap_file_for_existing_data_is_applied_or_refused(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("accounts:\n  - {name: tools, id: '111111111111'}\n  - {name: dev, id: '222222222222'}\n")
    served = Served(tmp_path, "--data-dir", "data", "--bootstrap", "first.yaml")
    served.banner()
    served.stop()
    listed = _run_cli("accounts", "list", "--data-dir", str(tmp_path / "data")).stdout
    assert listed.split() == ["111111111111", "tools", "222222222222", "dev"]
    # Applied: the accounts it adds are created; the existing ones stay as they are.
    grown = tmp_path / "grown.yaml"
    grown.write_text("organization: {ram_sharing: false}\naccounts:\n  - {name: tools, id: '111111111111'}\n"
                     "  - {name: dev, ou: Workloads/Dev}\n  - {name: staging, id: '333333333333', ou: Workloads}\n")
    served = Served(tmp_path, "--data-dir", "data", "--bootstrap", "grown.yaml")
    try:
        endpoint = served.endpoint()
        ids = _run_cli("accounts", "list", "--data-dir", str(tmp_path / "data")).stdout.split()
        assert ids == ["111111111111", "tools", "222222222222", "dev", "333333333333", "staging"]
        assert "[profile staging]" in (tmp_path / "data" / "aws" / "config").read_text()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_CONFIG_FILE=str(tmp_path / "data" / "aws" / "config"),
                   AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "data" / "aws" / "credentials"))
        aws = os.path.join(os.path.dirname(sys.executable), "aws")
        ident = subprocess.run([aws, "--profile", "staging", "sts", "get-caller-identity"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert json.loads(ident.stdout)["Account"] == "333333333333", ident.stderr
        assert endpoint in (tmp_path / "data" / "aws" / "config").read_text()
        # The existing dev account is moved into its unit, the new one placed in its own.
        def orgs(*args: str) -> dict[str, list[dict[str, str]]]:
            out = subprocess.run([aws, "--profile", "tools", "organizations", *args], env=env, capture_output=True,
                                 text=True, timeout=60)
            assert out.returncode == 0, out.stderr
            return json.loads(out.stdout)

        root = orgs("list-roots")["Roots"][0]["Id"]
        units = {u["Name"]: u["Id"] for u in orgs("list-organizational-units-for-parent", "--parent-id", root)[
            "OrganizationalUnits"]}
        dev_unit = {u["Name"]: u["Id"] for u in orgs("list-organizational-units-for-parent", "--parent-id",
                                                     units["Workloads"])["OrganizationalUnits"]}["Dev"]
        assert [a["Id"] for a in orgs("list-accounts-for-parent", "--parent-id", dev_unit)["Accounts"]] == [
            "222222222222"]
        assert [a["Id"] for a in orgs("list-accounts-for-parent", "--parent-id", units["Workloads"])["Accounts"]] == [
            "333333333333"]
    finally:
        served.stop()
    # Refused, loudly: what a file cannot change.
    for text, words in (("accounts:\n  - {name: dev}\n", "management account is tools (111111111111)"),
                        ("accounts:\n  - tools\n  - {name: dev, id: '444444444444'}\n",
                         "account dev exists with id 222222222222, not 444444444444"),
                        ("accounts:\n  - tools\n  - {name: other, id: '222222222222'}\n",
                         "account id 222222222222 (declared for other) belongs to another account")):
        bad = tmp_path / "conflict.yaml"
        bad.write_text(text)
        code, output = Served(tmp_path, "--data-dir", "data", "--bootstrap", "conflict.yaml").wait()
        assert code == 2, output
        errors = [line for line in output.splitlines() if line.startswith("stratum: ")]
        assert len(errors) == 1 and words in errors[0], output
        assert "Traceback" not in output


def test_serve_on_postgresql_creates_the_database_and_needs_an_explicit_data_dir(tmp_path: Path) -> None:
    if "postgresql" not in BACKENDS:
        pytest.skip("PostgreSQL is not among STRATUM_TEST_BACKENDS")
    name = "stratum_cli_" + os.urandom(4).hex()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    refused = _run_cli("serve", "--port", "0", "--database-url", url, cwd=tmp_path)
    assert "give --data-dir" in _one_line_error(refused, 2)
    served = Served(tmp_path, "--database-url", url, "--data-dir", "data")
    try:
        banner = served.banner()
        assert f"created the PostgreSQL database {name}" in banner
        assert f"objects: {tmp_path / 'data' / 'objects'}  master key: {tmp_path / 'data' / 'master.key'}" in banner
        listed = _run_cli("accounts", "list", "--database-url", url)
        assert listed.returncode == 0 and " dev" in listed.stdout, listed.stderr
    finally:
        served.stop()
        drop_pg_database(url)


@pytest.fixture
def declared_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    data_dir = tmp_path_factory.mktemp("declared")
    spec = data_dir / "accounts.yaml"
    spec.write_text("organization:\n  ram_sharing: true\naccounts:\n"
                    "  - {name: tools, id: '111111111111'}\n  - {name: dev, id: '222222222222'}\n"
                    "  - name: prod\n")
    srv = StratumServer(data_dir, extra_args=["--bootstrap", str(spec)])
    srv.start()
    yield srv
    srv.stop()


def test_bootstrap_file_declares_accounts(declared_server: StratumServer) -> None:
    assert declared_server.account_id("tools") == "111111111111"
    assert declared_server.account_id("dev") == "222222222222"
    assert len(declared_server.account_id("prod")) == 12
    ident = declared_server.client("sts", "dev").get_caller_identity()
    assert ident["Arn"] == "arn:aws:iam::222222222222:user/admin"


@pytest.fixture
def permissive_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    srv = StratumServer(tmp_path_factory.mktemp("permissive"), extra_args=["--permissive"])
    srv.start()
    yield srv
    srv.stop()


def test_permissive_mode_maps_any_credentials_to_the_first_account(permissive_server: StratumServer) -> None:
    anyone = boto3.client("sts", endpoint_url=permissive_server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    assert anyone.get_caller_identity()["Account"] == permissive_server.account_id("dev")
    # Unsigned JSON requests too.
    req = urllib.request.Request(f"{permissive_server.endpoint_url}/", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/x-amz-json-1.1",
                                          "X-Amz-Target": "SageMaker.ListPipelines"})
    with urllib.request.urlopen(req) as resp:
        assert "PipelineSummaries" in json.loads(resp.read())
    # Known keys still act as themselves.
    assert permissive_server.client("sts", "prod").get_caller_identity()["Account"] == \
        permissive_server.account_id("prod")


def test_default_mode_is_not_permissive(server: StratumServer) -> None:
    anyone = boto3.client("sts", endpoint_url=server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    with pytest.raises(anyone.exceptions.ClientError):
        anyone.get_caller_identity()
