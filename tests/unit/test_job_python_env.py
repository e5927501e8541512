"""A python job's own virtualenv (stratum.jobs.pyenv) over the image's interpreter: the image's
packages are visible, `python`/`python3`/`pip` on PATH are the job's, and `pip install` writes into
the job's directory, never into the server's environment; images of the SDK's function steps map
to the python runtime, and a job images file can name an image's interpreter."""

from __future__ import annotations

import json
import os
import sys
import sysconfig
import threading
import zipfile
from pathlib import Path

from stratum.jobs import images
from stratum.jobs.runner import run_job
from stratum.jobs.spec import JobSpec, NullReporter

CREDS = {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "secret", "SessionToken": "token"}
PROBE = """
set -e
mkdir -p "$(dirname "$2")" && cd "$(dirname "$2")"
python3 -m pip install --quiet --no-index --no-deps "$1"
OUT="$2" python - <<'PY'
import json, os, shutil, sys, sysconfig
import yaml  # one of the image's (the server's) packages
import stratumprobe  # installed by the job just now
json.dump({"prefix": sys.prefix, "purelib": sysconfig.get_paths()["purelib"], "yaml": yaml.__file__,
           "pip": shutil.which("pip"), "python3": shutil.which("python3"), "probe": stratumprobe.__file__},
          open(os.environ["OUT"], "w"))
PY
"""


def _wheel(tmp_path: Path) -> Path:
    """A one-module wheel, built by hand (no build backend, no index)."""
    wheel = tmp_path / "stratumprobe-1-py3-none-any.whl"
    files = {"stratumprobe/__init__.py": "VALUE = 1\n",
             "stratumprobe-1.dist-info/METADATA": "Metadata-Version: 2.1\nName: stratumprobe\nVersion: 1\n",
             "stratumprobe-1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                               "Tag: py3-none-any\n"}
    record = "".join(f"{name},,\n" for name in files) + "stratumprobe-1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, text in {**files, "stratumprobe-1.dist-info/RECORD": record}.items():
            zf.writestr(name, text)
    return wheel


def test_job_installs_stay_in_its_own_virtualenv(tmp_path: Path) -> None:
    script = tmp_path / "probe.sh"
    script.write_text(PROBE)
    job_dir = tmp_path / "job"
    spec = JobSpec(job_id="j" + os.urandom(4).hex(), kind="processing", name="unit", arn="arn:aws:sagemaker:::x",
                   account_id="123456789012", region="us-east-1", runtime="python", image="python:3",
                   request={"AppSpecification": {"ImageUri": "python:3",
                                                 "ContainerEntrypoint": ["/bin/bash", str(script),
                                                                         str(_wheel(tmp_path)),
                                                                         "/opt/ml/processing/out.json"]}},
                   job_dir=str(job_dir), log_path=str(tmp_path / "job.log"), endpoint_url="http://127.0.0.1:9",
                   credentials=CREDS, keep_job_dir=True)
    result = run_job(spec, NullReporter(), threading.Event())
    assert result.status == "Completed", (result.failure_reason, Path(spec.log_path).read_text())
    out = json.loads((job_dir / "ml" / "processing" / "out.json").read_text())
    env = job_dir / "python"
    assert out["prefix"] == str(env)
    assert out["pip"] == str(env / "bin" / "pip") and out["python3"] == str(env / "bin" / "python3")
    assert out["purelib"].startswith(str(env)) and out["probe"].startswith(str(env))
    import yaml

    assert out["yaml"] == yaml.__file__
    # The server's interpreter never saw the package.
    assert not any((Path(p) / "stratumprobe").exists() for p in sys.path if p)
    assert not Path(sysconfig.get_paths()["purelib"], "stratumprobe").exists()


def test_function_step_images_and_an_images_file_interpreter(tmp_path: Path) -> None:
    for uri in ("236514542706.dkr.ecr.us-east-1.amazonaws.com/sagemaker-base-python-310:1.0",
                "236514542706.dkr.ecr.us-east-1.amazonaws.com/sagemaker-base-python-38:1.0",
                "885854791233.dkr.ecr.us-east-1.amazonaws.com/sagemaker-distribution-prod:3.2.0-cpu"):
        runtime = images.resolve(uri)
        assert runtime.kind == "python" and runtime.python is None, uri
    config = tmp_path / "images.yaml"
    config.write_text('images:\n  - match: "*/sagemaker-distribution-prod:*"\n    runtime: python\n'
                      '    python: /opt/envs/sdk3/bin/python\n')
    runtime = images.resolve("885854791233.dkr.ecr.us-east-1.amazonaws.com/sagemaker-distribution-prod:3.2.0-cpu",
                             config)
    assert runtime.python == "/opt/envs/sdk3/bin/python"
