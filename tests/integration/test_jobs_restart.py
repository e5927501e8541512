"""Durability of jobs: a job left running by a crashed server is failed on the next start, with
its orphaned process tree killed; finished jobs keep their state across restarts."""

from __future__ import annotations

from stratum_testing import StratumServer
from test_jobs_support import processing_request, script_training_request, uid, wait_job, wait_status
from test_jobs_training import _alive, _wait_pids


def test_crash_fails_running_jobs_and_kills_orphans(fresh_server: StratumServer) -> None:
    server = fresh_server
    sm = server.client("sagemaker")
    done = uid("done")
    sm.create_processing_job(**processing_request(server, done, "print('finished')\n"))
    assert wait_job(sm, "processing", done)["ProcessingJobStatus"] == "Completed"
    name = uid("crash")
    sleeper = ("import os, subprocess, time\nchild = subprocess.Popen(['sleep', '300'])\n"
               "print(f'pids {os.getpid()} {child.pid}', flush=True)\ntime.sleep(300)\n")
    sm.create_training_job(**script_training_request(server, name, {"train.py": sleeper}))
    wait_status(sm, "training", name, lambda d: d["SecondaryStatus"] == "Training")
    pids = _wait_pids(server, name)
    server.kill()
    assert all(_alive(p) for p in pids)  # orphaned, still running

    server.start()
    sm = server.client("sagemaker")
    d = sm.describe_training_job(TrainingJobName=name)
    assert d["TrainingJobStatus"] == "Failed" and d["SecondaryStatus"] == "Failed"
    assert d["FailureReason"] == "Stratum restarted while the job was running"
    assert d["SecondaryStatusTransitions"][-1]["Status"] == "Failed"
    assert not any(_alive(p) for p in pids)
    assert sm.describe_processing_job(ProcessingJobName=done)["ProcessingJobStatus"] == "Completed"


def test_sigterm_while_jobs_start_is_a_clean_shutdown(fresh_server: StratumServer) -> None:
    """SIGTERM just after jobs were created (their supervisors are still starting them): the server
    exits 0 without an error in its log, and every job ends in a final state across the restart."""
    server = fresh_server
    sm = server.client("sagemaker")
    names = [uid("term") for _ in range(4)]
    requests = [script_training_request(server, name, {"train.py": "import time\ntime.sleep(300)\n"})
                for name in names]
    for request in requests:
        sm.create_training_job(**request)
    assert server.proc is not None
    proc = server.proc
    server.stop()  # SIGTERM, at once
    assert proc.returncode in (0, -15)  # uvicorn re-raises the signal it handled once it has shut down
    log = (server.data_dir / "server.log").read_text()
    assert "Traceback" not in log and "closed database" not in log, log[-3000:]

    server.start()
    sm = server.client("sagemaker")
    for name in names:
        d = sm.describe_training_job(TrainingJobName=name)
        assert d["TrainingJobStatus"] == "Failed", d["TrainingJobStatus"]
        assert d["FailureReason"] in ("Stratum stopped while the job was running",
                                      "Stratum restarted while the job was running")
