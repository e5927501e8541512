"""The Ray executor: a local Ray cluster started by the test (``ray start --head``, with token
authentication when the installed Ray has it), a server with ``--executor ray --ray-address``
(and ``--ray-token-file``), and the same processing and training jobs as on the local executor,
plus a stop that reaches the job's process through the cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stratum_testing import BACKENDS, StratumServer, close_server, free_port, make_server
from test_jobs_support import (
    bucket,
    get,
    processing_request,
    put,
    script_training_request,
    uid,
    untar,
    wait_job,
    wait_status,
)

pytest.importorskip("ray")


def _token_auth_supported() -> bool:
    try:
        from ray._raylet import AuthenticationTokenLoader  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class RayCluster:
    address: str
    token_file: Path | None  # None: a Ray without token authentication

    def server_args(self) -> list[str]:
        """`stratum serve` arguments that run jobs on this cluster."""
        args = ["--executor", "ray", "--ray-address", self.address]
        if self.token_file is not None:
            args += ["--ray-token-file", str(self.token_file)]
        return args


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    ray = Path(sys.executable).parent / "ray"
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    # The cluster's own settings only: none inherited from the user's RAY_* nor from ~/.ray.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    token_file = None
    if _token_auth_supported():
        token_file = Path(temp) / "auth_token"
        token_file.write_text(uuid.uuid4().hex)
        env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)})
    log = open(Path(temp) / "ray-start.log", "wb")
    proc = subprocess.Popen([str(ray), "start", "--head", "--block", "--num-cpus", "2", "--port", str(port),
                             "--disable-usage-stats", "--include-dashboard", "false", "--temp-dir", temp],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_cluster(address, proc, temp, env)
        yield RayCluster(address, token_file)
    finally:
        # The cluster's processes are all in the session `ray start` leads.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_cluster(address: str, proc: subprocess.Popen[bytes], temp: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((Path(temp) / "ray-start.log").read_text()[-3000:])
        check = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r}); "
                                "print(ray.cluster_resources().get('CPU'))"],
                               capture_output=True, text=True, timeout=60, env=env)
        if check.returncode == 0 and check.stdout.strip().endswith("2.0"):
            return
        time.sleep(1)
    raise RuntimeError("the Ray cluster did not come up")


@pytest.fixture(scope="module")
def ray_server(ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratumServer]:
    srv = make_server(tmp_path_factory, BACKENDS[0], ray_cluster.server_args())
    srv.start()
    yield srv
    close_server(srv)


@pytest.mark.slow
def test_jobs_run_on_ray(ray_server: StratumServer) -> None:
    server = ray_server
    sm = server.client("sagemaker")
    proc = uid("ray-proc")
    data = put(server, f"ray/{proc}/in/numbers.csv", "5\n6\n").rsplit("/", 1)[0]
    out = f"s3://{bucket(server)}/ray/{proc}/out"
    script = ("import json, os, boto3\nrows = open('/opt/ml/processing/input/data/numbers.csv').read().split()\n"
              "arn = boto3.client('sts').get_caller_identity()['Arn']\n"
              "parent = open(f'/proc/{os.getppid()}/cmdline').read()\n"
              "json.dump({'sum': sum(map(int, rows)), 'arn': arn, 'parent': parent}, "
              "open('/opt/ml/processing/output/r.json', 'w'))\n")
    sm.create_processing_job(**processing_request(
        server, proc, script,
        inputs=[{"InputName": "data", "S3Input": {"S3Uri": data, "LocalPath": "/opt/ml/processing/input/data",
                                                  "S3DataType": "S3Prefix"}}],
        outputs=[{"OutputName": "o", "S3Output": {"S3Uri": out, "LocalPath": "/opt/ml/processing/output",
                                                  "S3UploadMode": "EndOfJob"}}]))
    train = uid("ray-train")
    script_train = ("import os\nprint('loss=0.25')\n"
                    "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('ray')\n")
    sm.create_training_job(**script_training_request(server, train, {"train.py": script_train},
                                                     metric_definitions=[{"Name": "loss", "Regex": "loss=([0-9.]+)"}]))
    sleeper = uid("ray-stop")
    sm.create_training_job(**script_training_request(server, sleeper, {"train.py": "import time\ntime.sleep(300)\n"}))

    d = wait_job(sm, "processing", proc, timeout=120)
    assert d["ProcessingJobStatus"] == "Completed", d.get("FailureReason")
    result = json.loads(get(server, f"{out}/r.json"))
    assert result["sum"] == 11 and result["arn"].endswith("/SageMaker")
    assert "ray::" in result["parent"]  # the job's process is a child of a Ray worker
    d = wait_job(sm, "training", train, timeout=120)
    assert d["TrainingJobStatus"] == "Completed", d.get("FailureReason")
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]] == [
        "Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert d["FinalMetricDataList"][0]["Value"] == 0.25
    assert untar(get(server, d["ModelArtifacts"]["S3ModelArtifacts"])) == {"m.txt": b"ray"}

    wait_status(sm, "training", sleeper, lambda d: d["SecondaryStatus"] == "Training", timeout=120)
    sm.stop_training_job(TrainingJobName=sleeper)
    d = wait_job(sm, "training", sleeper, timeout=60)
    assert d["TrainingJobStatus"] == "Stopped" and d["SecondaryStatus"] == "Stopped"
