"""Presigned-URL tokens and the instance's identity files, without a server."""

from __future__ import annotations

from pathlib import Path

from stratum.config import Settings
from stratum.notebooks import urls, workspace
from stratum.notebooks.processes import kill_sessions, session_members


def test_tokens_round_trip_and_refuse_any_change(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = urls.sign(settings, {"i": "abc", "e": 123, "s": 1800})
    assert urls.verify(settings, token) == {"i": "abc", "e": 123, "s": 1800}
    body, mac = token.split(".")
    forged = urls.sign(settings, {"i": "abc", "e": 999999, "s": 1800}).split(".")[0]
    assert urls.verify(settings, f"{forged}.{mac}") is None  # another payload under the old signature
    assert urls.verify(settings, f"{body}.{mac[:-2]}AA") is None
    assert urls.verify(settings, "garbage") is None
    assert urls.verify(Settings(data_dir=tmp_path / "other"), token) is None  # another master key


def test_identity_files_add_ec2_user_and_keep_the_environment(tmp_path: Path) -> None:
    lay = workspace.Layout(tmp_path)
    lay.etc.mkdir(parents=True)
    workspace._identity_files(lay, 1234, 1234, root_access=True)
    passwd = (lay.etc / "passwd").read_text()
    assert "ec2-user:x:1234:1234:EC2 Default User:/home/ec2-user:/bin/bash" in passwd
    assert passwd.startswith("root:")  # the host's accounts stay
    sudoers = (lay.etc / "sudoers").read_text()
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in sudoers and "ec2-user ALL=(ALL) NOPASSWD:ALL" in sudoers
    assert (lay.etc / "sudoers").stat().st_mode & 0o777 == 0o440
    workspace._identity_files(lay, 1234, 1234, root_access=False)
    assert "NOPASSWD" not in (lay.etc / "sudoers").read_text()


def test_kill_sessions_ends_background_children(tmp_path: Path) -> None:
    import subprocess
    import time

    marker = tmp_path / "child.pid"
    proc = subprocess.Popen(["/bin/sh", "-c", f"nohup sleep 60 >/dev/null 2>&1 & echo $! > {marker}; wait"],
                            start_new_session=True)
    deadline = time.monotonic() + 5
    while not marker.exists() or not marker.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(marker.read_text())
    assert child in session_members([proc.pid])
    kill_sessions([proc.pid], grace=1)
    proc.wait(5)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]
