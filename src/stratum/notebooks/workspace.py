"""The files of a notebook instance and the private view its processes have of the machine.

Each instance owns a directory under ``<data dir>/notebooks/<instance id>``:

- ``volume/``: the instance's storage, ``/home/ec2-user/SageMaker`` (kept across Stop/Start and
  restarts of Stratum; removed with the instance),
- ``home/``: ``/home/ec2-user``, ``root/``: ``/root`` (when the host allows hiding it),
- ``ml/metadata/resource-metadata.json``: ``/opt/ml/metadata/resource-metadata.json``,
- ``etc/``: ``passwd``, ``group``, ``shadow`` and ``sudoers`` as the instance sees them (the
  host's, plus an ``ec2-user`` account and the instance's sudo rules),
- ``logs/``: the CloudWatch Logs streams of its lifecycle scripts and of JupyterLab.

Isolation ``mountns`` (root, with ``unshare`` and ``mount``): every process of the instance starts
in a private mount namespace where those directories and files are bind-mounted on the real paths,
so shell scripts, ``sudo -u ec2-user``, ``jq`` and the AWS CLI see what they would on a SageMaker
notebook instance; the host's mount table and files are left as they are (the only change to the
host is an empty ``/home/ec2-user`` and ``/opt/ml`` created as mount points when missing).
Isolation ``plain`` (anything else, or ``STRATUM_NOTEBOOK_ISOLATION=plain``): processes run as the
server's user with ``HOME`` set to the instance's home (``$HOME/SageMaker`` is the volume); scripts
that hard-code ``/home/ec2-user`` or ``/opt/ml`` or need ``sudo`` do not work there.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

EC2_USER = "ec2-user"
HOME = "/home/ec2-user"
VOLUME = "/home/ec2-user/SageMaker"
METADATA = "/opt/ml/metadata/resource-metadata.json"
ENV_KEEP = ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION", "AWS_REGION", "SAGEMAKER_ADMIN_CONFIG_OVERRIDE")

# Runs as root in the new mount namespace: $0 is the instance directory, "$@" the command.
_MOUNTS = r'''set -e
d="$0"
mount --bind "$d/home" /home/ec2-user
mount --bind "$d/volume" /home/ec2-user/SageMaker
mount --bind "$d/ml" /opt/ml
for f in passwd group shadow sudoers; do mount --bind "$d/etc/$f" "/etc/$f"; done
if [ -n "$STRATUM_NB_PYTHON_HOME" ]; then
  # The server's Python lives under the host's /root (mode 0700): the instance gets a /root of its
  # own (a tmpfs) holding only that installation, so ec2-user can run python and the AWS CLI.
  mkdir -p "$d/stage"
  mount --bind "$STRATUM_NB_PYTHON_HOME" "$d/stage"
  mount -t tmpfs -o mode=0755 tmpfs /root
  mkdir -p "$STRATUM_NB_PYTHON_HOME"
  mount --bind "$d/stage" "$STRATUM_NB_PYTHON_HOME"
elif [ -n "$STRATUM_NB_ROOT_HOME" ]; then
  mount --bind "$d/root" /root
fi
unset STRATUM_NB_ROOT_HOME STRATUM_NB_PYTHON_HOME
cd /home/ec2-user/SageMaker
exec "$@"
'''

_probe_lock = threading.Lock()
_probe: str | None = None


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def volume(self) -> Path:
        return self.root / "volume"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def root_home(self) -> Path:
        return self.root / "root"

    @property
    def ml(self) -> Path:
        return self.root / "ml"

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def layout(data_dir: Path, instance_id: str) -> Layout:
    return Layout(Path(data_dir) / "notebooks" / instance_id)


def isolation() -> str:
    """'mountns' when this host can give instances their own /home/ec2-user, else 'plain'."""
    global _probe
    with _probe_lock:
        if _probe is None:
            # STRATUM_NOTEBOOK_ISOLATION=plain chooses the fallback even where namespaces work.
            wanted = os.environ.get("STRATUM_NOTEBOOK_ISOLATION", "auto")
            _probe = "plain" if wanted == "plain" or not _mountns_works() else "mountns"
        return _probe


def _mountns_works() -> bool:
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("mount"):
        return False
    try:
        for point in (Path(HOME), Path("/opt/ml")):
            point.mkdir(parents=True, exist_ok=True)  # empty mount points; only namespaces bind on them
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                              'mount --bind /opt/ml /home/ec2-user'], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0


def ec2_user_ids() -> tuple[int, int]:
    """The uid/gid ``ec2-user`` has inside instances: the first id from 1000 no host user has, so
    the volume's files never look like a host user's."""
    taken = {p.pw_uid for p in pwd.getpwall()}
    uid = 1000
    while uid in taken:
        uid += 1
    return uid, uid


def can_hide_root() -> bool:
    """A per-instance /root unless the server's Python or data live under the host's /root."""
    return not any(os.path.realpath(p).startswith("/root/") or os.path.realpath(p) == "/root"
                   for p in (sys.prefix, sys.base_prefix, Path.cwd()))


def prepare(lay: Layout, *, name: str, arn: str, root_access: bool) -> None:
    """Create (or refresh) the instance's directories and identity files."""
    for path in (lay.volume, lay.home, lay.root_home, lay.ml / "metadata", lay.etc, lay.logs):
        path.mkdir(parents=True, exist_ok=True)
    mount_point = lay.home / "SageMaker"
    if isolation() == "mountns":
        if mount_point.is_symlink():
            mount_point.unlink()
        mount_point.mkdir(exist_ok=True)  # the volume is bind-mounted on it
    elif not mount_point.exists():
        mount_point.symlink_to(lay.volume)  # $HOME/SageMaker is the volume without a namespace too
    (lay.ml / "metadata" / "resource-metadata.json").write_text(json.dumps(
        {"ResourceArn": arn, "ResourceName": name}))
    uid, gid = ec2_user_ids()
    if isolation() == "mountns":
        _identity_files(lay, uid, gid, root_access)
        os.chown(lay.home, uid, gid)
        os.chown(lay.volume, uid, gid)
        os.chmod(lay.root_home, 0o700)


def _identity_files(lay: Layout, uid: int, gid: int, root_access: bool) -> None:
    def with_line(source: str, line: str, prefix: str) -> str:
        try:
            text = Path(source).read_text()
        except OSError:
            text = ""
        kept = [ln for ln in text.splitlines() if not ln.startswith(prefix)]
        return "\n".join([*kept, line]) + "\n"

    (lay.etc / "passwd").write_text(with_line("/etc/passwd", f"{EC2_USER}:x:{uid}:{gid}:EC2 Default User:{HOME}:/bin/bash",
                                              f"{EC2_USER}:"))
    (lay.etc / "group").write_text(with_line("/etc/group", f"{EC2_USER}:x:{gid}:", f"{EC2_USER}:"))
    shadow = lay.etc / "shadow"
    shadow.write_text(with_line("/etc/shadow", f"{EC2_USER}:!!:19000:0:99999:7:::", f"{EC2_USER}:"))
    os.chmod(shadow, 0o640)
    try:
        sudoers = Path("/etc/sudoers").read_text()
    except OSError:
        sudoers = "root ALL=(ALL:ALL) ALL\n"
    bin_dir = str(Path(sys.executable).parent)
    rules = [f'Defaults env_keep += "{" ".join(ENV_KEEP)}"',
             f'Defaults secure_path="{bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"',
             "Defaults !use_pty"]
    if root_access:  # RootAccess Enabled: ec2-user may become root, as on SageMaker
        rules.append(f"{EC2_USER} ALL=(ALL) NOPASSWD:ALL")
    target = lay.etc / "sudoers"
    target.write_text(sudoers.rstrip("\n") + "\n" + "\n".join(rules) + "\n")
    os.chmod(target, 0o440)


def aws_config(lay: Layout, region: str, endpoint_url: str) -> None:
    """~/.aws/config of ec2-user and root: the region and Stratum's endpoint for tools that do not
    inherit the environment (credentials come from the container-credentials endpoint)."""
    for home in (lay.home, lay.root_home):
        target = home / ".aws"
        target.mkdir(parents=True, exist_ok=True)
        (target / "config").write_text(f"[default]\nregion = {region}\nendpoint_url = {endpoint_url}\n")
    if isolation() == "mountns":
        uid, gid = ec2_user_ids()
        for path in (lay.home / ".aws", lay.home / ".aws" / "config"):
            os.chown(path, uid, gid)


def command(lay: Layout, argv: list[str], env: dict[str, str], *, as_user: bool) -> tuple[list[str], dict[str, str]]:
    """The command line that runs ``argv`` as the instance (root, or ec2-user with ``as_user``)."""
    env = dict(env)
    if isolation() != "mountns":
        env["HOME"] = str(lay.home)
        return argv, env
    if as_user:
        uid, gid = ec2_user_ids()
        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", *argv]
        env.update(HOME=HOME, USER=EC2_USER, LOGNAME=EC2_USER)
    else:
        env.update(HOME="/root", USER="root", LOGNAME="root")
    python_home = os.path.realpath(sys.base_prefix)
    if python_home.startswith("/root/"):
        env["STRATUM_NB_PYTHON_HOME"] = python_home
    elif can_hide_root():
        env["STRATUM_NB_ROOT_HOME"] = "1"
    prefix = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _MOUNTS, str(lay.root)]
    return [*prefix, *argv], env


def inside(lay: Layout, path: str) -> Path:
    """Where a path the instance sees lives on the host (/home/ec2-user/SageMaker/... -> volume/...)."""
    if path.startswith(VOLUME):
        return lay.volume / path[len(VOLUME):].lstrip("/")
    if path.startswith(HOME):
        return lay.home / path[len(HOME):].lstrip("/")
    return Path(path)
