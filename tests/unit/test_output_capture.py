"""A job's output pipe: everything the process and its children print reaches the log file, in
order, whole lines at a time, with Stratum's own lines never splitting one."""

from __future__ import annotations

import sys
from pathlib import Path

from stratum.jobs import logs as job_logs
from stratum.jobs import process
from stratum.services.logs.eventstore import StreamReader


def _run(tmp_path: Path, code: str, deadline: float | None = None) -> tuple[int, str, Path]:
    log = tmp_path / "job.log"
    code_, outcome = process.run([sys.executable, "-c", code], env={"PYTHONUNBUFFERED": "1"}, cwd=str(tmp_path),
                                 log_path=str(log), marker="t", should_stop=lambda: False, deadline=deadline,
                                 grace=0.5)
    return code_, outcome, log


def test_large_output_arrives_whole_and_in_order(tmp_path: Path) -> None:
    # 3 MB: more than the pipe holds, so the process writes while the runner reads.
    code, outcome, log = _run(tmp_path, "import sys\nfor i in range(60000): print(f'line {i:06d} ' + 'x' * 40)\n"
                                        "sys.stderr.write('done on stderr\\n')\nsys.stdout.write('no newline')")
    assert (code, outcome) == (0, process.Outcome.COMPLETED)
    lines = log.read_text().splitlines()
    assert lines[:60000] == [f"line {i:06d} " + "x" * 40 for i in range(60000)]
    assert lines[60000:] == ["done on stderr", "no newline"]
    events = [e.message.decode() for e in StreamReader(log).forward()]
    assert events[0] == "line 000000 " + "x" * 40 and events[-1] == "no newline" and len(events) == 60002


def test_server_lines_never_split_a_line_being_written(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    capture = process.OutputCapture(str(log))
    import os

    os.write(capture.write_fd, b"first whole line\nhalf of a li")
    capture.pump()
    job_logs.append_line(log, "[stratum] progress")
    os.write(capture.write_fd, b"ne\n")
    capture.started()
    capture.close()
    assert log.read_text().splitlines() == ["first whole line", "[stratum] progress", "half of a line"]


def test_children_left_running_are_killed_and_their_output_kept(tmp_path: Path) -> None:
    code = ("import subprocess, sys\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; print(\"child up\", flush=True); time.sleep(60)'])\n"
            "import time; time.sleep(0.5); print('leader exits')")
    exit_code, outcome, log = _run(tmp_path, code, deadline=None)
    assert exit_code == 0 and outcome == process.Outcome.COMPLETED
    assert sorted(log.read_text().splitlines()) == ["child up", "leader exits"]
