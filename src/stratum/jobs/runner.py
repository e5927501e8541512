"""The container-contract runner: one job from input download to output upload.

The same code runs in a thread of the local executor and inside a Ray task. It gets everything it
needs in a JobSpec (including the role session's credentials and the Stratum endpoint), talks to
the world only through S3 and its Reporter, and returns a RunResult the server records.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

from stratum.jobs import contracts, process, pyenv
from stratum.jobs import logs as job_logs
from stratum.jobs.contracts import Layout
from stratum.jobs.metrics import parse_metrics
from stratum.jobs.s3io import S3, JobDataError, has_files, join_uri, split_uri
from stratum.jobs.spec import JobSpec, Reporter, RunResult, Transition
from stratum.jobs.tarballs import extract_tarball, make_tarball

_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")
FAILURE_FILE_LIMIT = 1024  # SageMaker keeps the first KB of /opt/ml/output/failure


class Cancel(Protocol):
    def is_set(self) -> bool: ...


class Stopped(Exception):
    """The job was asked to stop between two phases."""


class Runner:
    def __init__(self, spec: JobSpec, reporter: Reporter, cancel: Cancel) -> None:
        self.spec = spec
        self.reporter = reporter
        self.cancel = cancel
        self.layout = Layout(spec.job_dir)
        self.s3 = S3(spec.endpoint_url, spec.region, spec.credentials,
                     contracts.output_kms_key(spec.kind, spec.request))
        self.transitions: list[Transition] = []
        self.deadline = time.monotonic() + spec.max_runtime if spec.max_runtime else None
        self.isolation = process.resolve_isolation(spec.isolation)
        self.started_at = time.time()
        self.python = sys.executable  # the image's `python`: the job's own virtualenv once run() made it
        self.bin_dir: str | None = None

    # ------------------------------------------------------------------------------------ plumbing
    def log(self, message: str) -> None:
        job_logs.append_line(self.spec.log_path, f"[stratum] {message}")

    def transition(self, status: str, message: str) -> None:
        now = time.time()
        if self.transitions and self.transitions[-1].end is None:
            self.transitions[-1].end = now
        self.transitions.append(Transition(status, now, message))
        self.reporter.transition(status, message)

    def check_stop(self) -> None:
        if self.cancel.is_set():
            raise Stopped()

    def timed_out(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def command(self, argv: list[str]) -> list[str]:
        """The container command on this host: /opt/ml paths remapped, python is the server's Python."""
        argv = [self.layout.remap(a) for a in argv]
        if self.spec.runtime != "host" and argv and _PYTHON.match(os.path.basename(argv[0])):
            argv = [self.python, *argv[1:]]
        return argv

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = contracts.base_environment(self.spec.region, self.spec.endpoint_url, contracts.identity_environment(
            self.spec.endpoint_url, self.spec.credentials, self.spec.credentials_token))
        if self.bin_dir:
            # The image's `python`/`python3`/`pip` come first: container scripts that find them on
            # PATH (the SDK's job drivers: `python -m ...`, `command -v python3`) run the job's.
            env["PATH"] = os.pathsep.join(p for p in (self.bin_dir, env.get("PATH")) if p)
        for key, value in (extra or {}).items():
            env[key] = self.layout.remap(str(value))
        return env

    def execute(self, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
        self.log(f"running {shlex.join(argv)}")
        full_argv, full_env = process.isolate(argv, env, str(self.layout.ml), self.isolation)
        return process.run(full_argv, env=full_env, cwd=str(cwd), log_path=self.spec.log_path,
                           marker=self.spec.job_id, should_stop=self.cancel.is_set, deadline=self.deadline,
                           grace=self.spec.stop_grace,
                           on_start=lambda pid: self.reporter.process_started(pid, self.spec.job_id))

    def failure_file(self) -> str | None:
        path = self.layout.output / "failure"
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").strip()[:FAILURE_FILE_LIMIT]
            return text or None
        return None

    def last_error_lines(self, count: int = 3) -> str:
        try:
            lines = [ln for ln in Path(self.spec.log_path).read_text(errors="replace").splitlines()
                     if ln.strip() and not ln.startswith("[stratum]")]
        except OSError:
            return ""
        return "\n".join(lines[-count:])

    def result(self, status: str, **kwargs: Any) -> RunResult:
        if self.transitions and self.transitions[-1].end is None:
            self.transitions[-1].end = time.time()
        return RunResult(status=status, transitions=self.transitions, started_at=self.started_at, **kwargs)

    # ------------------------------------------------------------------------------------- running
    def run(self) -> RunResult:
        Path(self.spec.job_dir).mkdir(parents=True, exist_ok=True)
        Path(self.spec.log_path).parent.mkdir(parents=True, exist_ok=True)
        try:
            if self.spec.runtime != "host":
                self.make_python_environment()
            if self.spec.kind == "training":
                return self.training()
            if self.spec.kind == "processing":
                return self.processing()
            if self.spec.kind == "transform":
                from stratum.jobs.transform import run_transform

                return run_transform(self)
            raise ValueError(f"unknown job kind {self.spec.kind}")
        except Stopped:
            self.log("stopped")
            if self.spec.kind == "training":
                self.transition("Stopped", "Training job stopped")
            return self.result("Stopped", secondary_status="Stopped" if self.spec.kind == "training" else None)
        except JobDataError as exc:
            self.log(str(exc))
            return self.failed(str(exc))
        except Exception as exc:
            self.log("internal error:\n" + traceback.format_exc())
            return self.failed(f"InternalServerError: {type(exc).__name__}: {exc}")
        finally:
            job_logs.flush(self.spec.log_path)  # output a model server wrote after the last line of ours
            if not self.spec.keep_job_dir:
                shutil.rmtree(self.spec.job_dir, ignore_errors=True)

    def make_python_environment(self) -> None:
        try:
            bin_dir = pyenv.create(Path(self.spec.job_dir) / "python", self.spec.python)
        except (pyenv.PythonEnvironmentError, OSError) as exc:
            raise JobDataError(f"ClientError: {exc}") from exc
        self.bin_dir, self.python = str(bin_dir), str(bin_dir / "python")

    def failed(self, reason: str, exit_message: str | None = None) -> RunResult:
        if self.spec.kind == "training":
            self.transition("Failed", "Training job failed")
            return self.result("Failed", failure_reason=reason, secondary_status="Failed")
        return self.result("Failed", failure_reason=reason, exit_message=exit_message)

    # ------------------------------------------------------------------------------------ training
    def training(self) -> RunResult:
        req = self.spec.request
        hps = {k: str(v) for k, v in (req.get("HyperParameters") or {}).items()}
        program = _hp(hps, "sagemaker_program")
        submit_dir = _hp(hps, "sagemaker_submit_directory")
        channels = [c["ChannelName"] for c in req.get("InputDataConfig") or []]
        self.layout.create_training(channels)
        self.transition("Downloading", "Downloading input data")
        contracts.write_training_config(self.layout, req)
        for channel in req.get("InputDataConfig") or []:
            self.check_stop()
            self.download_channel(channel)
        if program and submit_dir:
            self.fetch_code(submit_dir, self.layout.code)
        self.check_stop()
        argv, cwd = self.training_command(program)
        env = self.environment(req.get("Environment"))
        env.update(contracts.training_environment(self.layout, req, self.spec.name, program, submit_dir))
        env["TRAINING_JOB_ARN"] = self.spec.arn
        if program:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.layout.code), env.get("PYTHONPATH")) if p)
        self.transition("Training", "Training image download completed. Training in progress.")
        code, outcome = self.execute(argv, env, cwd)
        metrics = parse_metrics(self.spec.log_path, (req.get("AlgorithmSpecification") or {}).get("MetricDefinitions")
                                or [], self.spec.runtime == "xgboost" and not program, time.time())
        artifacts = join_uri(req["OutputDataConfig"]["S3OutputPath"], self.spec.name, "output", "model.tar.gz")
        if outcome == process.Outcome.TIMEOUT:
            self.log(f"MaxRuntimeInSeconds ({self.spec.max_runtime:g}) exceeded: the job was stopped")
            self.save_model(artifacts, quiet=True)
            self.transition("MaxRuntimeExceeded", "Training job runtime exceeded MaxRuntimeInSeconds provided")
            return self.result("Stopped", secondary_status="MaxRuntimeExceeded", metrics=metrics)
        if outcome == process.Outcome.STOPPED:
            self.save_model(artifacts, quiet=True)
            self.transition("Stopped", "Training job stopped")
            return self.result("Stopped", secondary_status="Stopped", metrics=metrics)
        if code != 0:
            detail = self.failure_file()
            if detail is None:
                detail = (f"ExecuteUserScriptError:\nExitCode {code}\nErrorMessage \"{self.last_error_lines()}\"\n"
                          f"Command \"{shlex.join(argv)}\"")
            self.transition("Failed", "Training job failed")
            return self.result("Failed", secondary_status="Failed", failure_reason=_error_reason(detail),
                               metrics=metrics)
        self.transition("Uploading", "Uploading generated training model")
        self.save_model(artifacts)
        self.transition("Completed", "Training job completed")
        return self.result("Completed", secondary_status="Completed", metrics=metrics, model_artifacts=artifacts)

    def training_command(self, program: str | None) -> tuple[list[str], Path]:
        spec = self.spec.request.get("AlgorithmSpecification") or {}
        entrypoint = list(spec.get("ContainerEntrypoint") or [])
        if entrypoint:
            return self.command(entrypoint + list(spec.get("ContainerArguments") or [])), self.layout.code
        if program:
            hps = {k: str(v) for k, v in (self.spec.request.get("HyperParameters") or {}).items()}
            script = self.layout.code / program
            if not script.is_file():
                raise JobDataError(f"AlgorithmError: the entry point {program} is not in the source directory "
                                   "(sagemaker_submit_directory)")
            interpreter = ["/bin/sh"] if program.endswith(".sh") else [self.python]
            return [*interpreter, str(script), *contracts.user_args(hps)], self.layout.code
        if self.spec.runtime == "xgboost":
            return [sys.executable, "-m", "stratum.algorithms.xgboost.train"], self.layout.ml
        raise JobDataError(f"ClientError: image {self.spec.image} runs a training script: set the "
                           "sagemaker_program hyperparameter (the SDK's entry_point) and sagemaker_submit_directory, "
                           "or AlgorithmSpecification.ContainerEntrypoint")

    def download_channel(self, channel: dict[str, Any]) -> None:
        source = channel.get("DataSource") or {}
        s3 = source.get("S3DataSource")
        if s3 is None:
            raise JobDataError(f"ClientError: channel {channel['ChannelName']}: only S3 data sources are supported "
                               "by Stratum")
        if s3.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise JobDataError(f"ClientError: channel {channel['ChannelName']}: S3DataType {s3['S3DataType']} is "
                               "not supported by Stratum (use S3Prefix)")
        self.log(f"downloading channel {channel['ChannelName']} from {s3['S3Uri']}")
        files = self.s3.download_prefix(s3["S3Uri"], self.layout.data / channel["ChannelName"])
        if not files:
            raise JobDataError(f"ClientError: No S3 objects found under S3 URL \"{s3['S3Uri']}\" given in input data "
                               f"source. Please ensure that the bucket exists in the selected region "
                               f"({self.spec.region}), that objects exist under that S3 prefix, and that the role "
                               f"has \"s3:ListBucket\" permissions on bucket \"{split_uri(s3['S3Uri'])[0]}\".")

    def fetch_code(self, uri: str, target: Path) -> None:
        """The SDK's sourcedir.tar.gz (or a prefix of plain files) into ``target``."""
        self.log(f"downloading code from {uri}")
        target.mkdir(parents=True, exist_ok=True)
        if uri.endswith((".tar.gz", ".tgz", ".tar")):
            archive = self.layout.job_dir / "sourcedir.tar.gz"
            bucket, key = split_uri(uri)
            self.s3.download(bucket, key, archive)
            extract_tarball(archive, target)
            archive.unlink()
        elif not self.s3.download_prefix(uri, target):
            raise JobDataError(f"ClientError: no code found at {uri}")

    def save_model(self, artifacts: str, quiet: bool = False) -> None:
        """model/ -> model.tar.gz and output/data -> output.tar.gz next to it."""
        if quiet and not has_files(self.layout.model):
            return
        archive = self.layout.job_dir / "model.tar.gz"
        make_tarball(self.layout.model, archive)
        self.log(f"uploading model to {artifacts}")
        self.s3.upload_file(archive, artifacts)
        if has_files(self.layout.output_data):
            make_tarball(self.layout.output_data, archive)
            self.s3.upload_file(archive, artifacts.rsplit("/", 1)[0] + "/output.tar.gz")

    # ---------------------------------------------------------------------------------- processing
    def processing(self) -> RunResult:
        req = self.spec.request
        self.layout.ml.mkdir(parents=True, exist_ok=True)
        contracts.write_processing_config(self.layout, req, self.spec.name, self.spec.arn)
        for inp in req.get("ProcessingInputs") or []:
            self.check_stop()
            self.download_processing_input(inp)
        outputs = (req.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        for out in outputs:
            if out.get("S3Output"):
                self.layout.real(out["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        (self.layout.output).mkdir(parents=True, exist_ok=True)
        self.check_stop()
        app = req["AppSpecification"]
        entrypoint = list(app.get("ContainerEntrypoint") or [])
        if not entrypoint:
            raise JobDataError(f"ClientError: image {self.spec.image} has no default entrypoint in Stratum: set "
                               "AppSpecification.ContainerEntrypoint")
        argv = self.command(entrypoint + list(app.get("ContainerArguments") or []))
        env = self.environment(req.get("Environment"))
        code, outcome = self.execute(argv, env, self.layout.ml)
        if outcome == process.Outcome.STOPPED:
            return self.result("Stopped")
        if outcome == process.Outcome.TIMEOUT:
            self.log(f"MaxRuntimeInSeconds ({self.spec.max_runtime:g}) exceeded: the job was stopped")
            return self.failed(f"MaxRuntimeExceeded: the processing job ran longer than its MaxRuntimeInSeconds "
                               f"({self.spec.max_runtime:g} seconds) and was stopped")
        message = self.exit_message()
        if code != 0:
            detail = self.failure_file() or "See job logs for more information"
            return self.failed(_error_reason(detail), message)
        for out in outputs:
            self.check_stop()
            s3 = out.get("S3Output")
            if s3:
                local = self.layout.real(s3["LocalPath"])
                self.log(f"uploading output {out['OutputName']} to {s3['S3Uri']}")
                self.s3.upload_dir(local, s3["S3Uri"])
        return self.result("Completed", exit_message=message)

    def exit_message(self) -> str | None:
        path = self.layout.output / "message"
        if path.is_file():
            return path.read_text(errors="replace").strip()[:FAILURE_FILE_LIMIT] or None
        return None

    def download_processing_input(self, inp: dict[str, Any]) -> None:
        s3 = inp.get("S3Input")
        if s3 is None:
            raise JobDataError(f"ClientError: input {inp['InputName']}: only S3Input is supported by Stratum")
        if s3.get("S3DataType") != "S3Prefix":
            raise JobDataError(f"ClientError: input {inp['InputName']}: S3DataType {s3.get('S3DataType')} is not "
                               "supported by Stratum (use S3Prefix)")
        target = self.layout.real(s3["LocalPath"])
        self.log(f"downloading input {inp['InputName']} from {s3['S3Uri']} to {s3['LocalPath']}")
        target.mkdir(parents=True, exist_ok=True)
        if not self.s3.download_prefix(s3["S3Uri"], target):
            raise JobDataError(f"ClientError: No S3 objects found under S3 URL \"{s3['S3Uri']}\" given in input "
                               f"{inp['InputName']}")


def _hp(hps: dict[str, str], name: str) -> str | None:
    if name not in hps:
        return None
    value = contracts.decode_hyperparameter(hps[name])
    return str(value) if value not in (None, "") else None


def _error_reason(detail: str) -> str:
    """The container's own classification (ClientError:/AlgorithmError:) or SageMaker's default."""
    return detail if detail.startswith(("ClientError:", "AlgorithmError:")) else f"AlgorithmError: {detail}"


def run_job(spec: JobSpec, reporter: Reporter, cancel: Cancel) -> RunResult:
    return Runner(spec, reporter, cancel).run()
