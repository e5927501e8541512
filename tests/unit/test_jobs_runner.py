"""The container-contract runner without a server: /opt/ml paths hard-coded in a script work
under both isolations (private mount namespace, Python path patch), deadlines and stop requests
kill the process tree, and the built-in XGBoost trains and serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stratum.jobs import process
from stratum.jobs.runner import run_job
from stratum.jobs.spec import JobSpec, NullReporter

CREDS = {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "secret", "SessionToken": "token"}
SCRIPT = """
import glob, json, os, pathlib, shutil, sys
data = open('/opt/ml/processing/input/data/in.txt').read()
listing = sorted(os.listdir('/opt/ml/processing/input/data'))
exists = os.path.exists('/opt/ml/processing/input/data/in.txt')
os.makedirs('/opt/ml/processing/output/deep/er', exist_ok=True)
pathlib.Path('/opt/ml/processing/output/deep/er/p.txt').write_text(data.upper())
shutil.copy('/opt/ml/processing/input/data/in.txt', '/opt/ml/processing/output/copy.txt')
found = glob.glob('/opt/ml/processing/output/**/*.txt', recursive=True)
json.dump({'listing': listing, 'exists': exists, 'found': len(found), 'argv': sys.argv[1:]},
          open('/opt/ml/processing/output/result.json', 'w'))
"""


def _spec(tmp_path: Path, request: dict, isolation: str, kind: str = "processing", **kw: object) -> JobSpec:
    return JobSpec(job_id="j" + os.urandom(4).hex(), kind=kind, name="unit", arn="arn:aws:sagemaker:::x",
                   account_id="123456789012", region="us-east-1", request=request, runtime="python", image="python:3",
                   job_dir=str(tmp_path / "job"), log_path=str(tmp_path / "job.log"),
                   endpoint_url="http://127.0.0.1:9", credentials=CREDS, isolation=isolation, keep_job_dir=True,
                   stop_grace=0.5, **kw)  # type: ignore[arg-type]


def _processing(argv: list[str]) -> dict:
    return {"AppSpecification": {"ImageUri": "python:3", "ContainerEntrypoint": argv},
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                      "VolumeSizeInGB": 1}}}


ISOLATIONS = ["pathpatch", pytest.param("mountns", marks=pytest.mark.skipif(
    process.available_isolation() != "mountns", reason="no mount namespaces here"))]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_hard_coded_paths(tmp_path: Path, isolation: str) -> None:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    data = tmp_path / "job" / "ml" / "processing" / "input" / "data"
    data.mkdir(parents=True)
    (data / "in.txt").write_text("hello")
    spec = _spec(tmp_path, _processing(["python3", str(script), "--dir", "/opt/ml/processing/output"]), isolation)
    result = run_job(spec, NullReporter(), threading.Event())
    assert result.status == "Completed", (result.failure_reason, Path(spec.log_path).read_text())
    out = tmp_path / "job" / "ml" / "processing" / "output"
    assert json.loads((out / "result.json").read_text()) == {
        "listing": ["in.txt"], "exists": True, "found": 2, "argv": ["--dir", str(out)]}
    assert (out / "deep" / "er" / "p.txt").read_text() == "HELLO"
    assert (out / "copy.txt").read_text() == "hello"
    assert not Path("/opt/ml/processing/output/copy.txt").exists()  # nothing leaked onto the host path


def test_deadline_and_stop_kill_the_tree(tmp_path: Path) -> None:
    sleeper = ["python3", "-c", "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"]
    spec = _spec(tmp_path / "a", _processing(sleeper), "pathpatch", max_runtime=0.5)
    start = time.monotonic()
    result = run_job(spec, NullReporter(), threading.Event())
    assert result.status == "Failed" and "MaxRuntimeExceeded" in (result.failure_reason or "")
    assert time.monotonic() - start < 10

    class Recorder(NullReporter):
        pid = 0

        def process_started(self, pid: int, marker: str) -> None:
            self.pid = pid

    cancel = threading.Event()
    recorder = Recorder()
    spec = _spec(tmp_path / "b", _processing(sleeper), "pathpatch")
    threading.Timer(0.8, cancel.set).start()
    result = run_job(spec, recorder, cancel)
    assert result.status == "Stopped"
    deadline = time.monotonic() + 5
    while _group_members(recorder.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(recorder.pid) == []  # no live process of the job's group is left


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_builtin_xgboost_trains_and_serves(tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    from stratum.algorithms.xgboost.serve import XGBoostHandler

    ml = tmp_path / "ml"
    (ml / "input" / "config").mkdir(parents=True)
    (ml / "input" / "data" / "train").mkdir(parents=True)
    rows = [f"{2 * i + 1},{i},{i % 3}" for i in range(60)]
    (ml / "input" / "data" / "train" / "part.csv").write_text("\n".join(rows) + "\n")
    (ml / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"num_round": "30", "objective": "reg:linear", "max_depth": "3", "eta": "0.3"}))
    (ml / "input" / "config" / "inputdataconfig.json").write_text(json.dumps(
        {"train": {"ContentType": "text/csv"}}))
    env = {**os.environ, "SM_INPUT_DIR": str(ml / "input"), "SM_MODEL_DIR": str(ml / "model"),
           "SM_OUTPUT_DIR": str(ml / "output")}
    out = subprocess.run([sys.executable, "-m", "stratum.algorithms.xgboost.train"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[29]#011train-rmse:" in out.stdout
    assert (ml / "model" / "xgboost-model").is_file()
    handler = XGBoostHandler(ml / "model")
    reply = handler(b"10,1\n20,2\n", "text/csv", "text/csv")
    values = [float(v) for v in reply.body.decode().splitlines()]  # one per line, as the container writes
    assert (reply.status, reply.content_type) == (200, "text/csv; charset=utf-8")
    assert len(values) == 2 and abs(values[0] - 21) < 5 and abs(values[1] - 41) < 5
    reply = handler(b"1:10 2:1\n", "text/libsvm", "application/json")
    assert json.loads(reply.body)["predictions"][0]["score"] == pytest.approx(values[0], rel=1e-3)
    (ml / "input" / "config" / "hyperparameters.json").write_text("{}")
    out = subprocess.run([sys.executable, "-m", "stratum.algorithms.xgboost.train"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 1
    assert (ml / "output" / "failure").read_text() == "ClientError: Missing required hyperparameter: num_round"
