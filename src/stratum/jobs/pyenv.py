"""The Python environment of a job whose image maps to a local interpreter.

An image's Python is the server's own interpreter, or the one a job images file names for it
(``python:``, e.g. a virtualenv with another SageMaker SDK). A job must see that environment's
packages but must not change them: container scripts install into "their" Python (the SDK's
remote function bootstrap runs ``python -m pip install -r requirements.txt -U``, ModelTrainer's
``sm_train.sh`` installs ``requirements.txt``), which on SageMaker lands in a throwaway container.
So every job gets a thin virtualenv of its own in its job directory: the interpreter's packages
are visible through a ``.pth`` file, and ``pip install`` (a ``pip``/``pip3`` wrapper around
``python -m pip``) writes into the job's own site-packages, which shadow them and vanish with
the job directory. Building it is a few symlinks and files: no interpreter is started for the
server's own Python.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_PIP_WRAPPER = '#!/bin/sh\nexec "$(dirname "$0")/python" -m pip "$@"\n'
_PROBE = ("import json, site, sys; print(json.dumps({'base': getattr(sys, '_base_executable', sys.executable), "
          "'version': list(sys.version_info[:3]), 'site': site.getsitepackages()}))")


class PythonEnvironmentError(Exception):
    """The interpreter an image maps to cannot be used."""


@dataclass(frozen=True)
class Interpreter:
    base: str  # the real interpreter the job's virtualenv links to
    version: tuple[int, int, int]
    site_packages: tuple[str, ...]  # what the job sees through its .pth file


def _own() -> Interpreter:
    base = getattr(sys, "_base_executable", None) or sys.executable
    return Interpreter(os.path.realpath(base), (sys.version_info[0], sys.version_info[1], sys.version_info[2]),
                       tuple(site.getsitepackages()))


@lru_cache(maxsize=16)
def _probe(python: str) -> Interpreter:
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
        data = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise PythonEnvironmentError(f"the Python interpreter {python} of this image cannot be run: {exc}") from exc
    return Interpreter(os.path.realpath(data["base"]), tuple(data["version"]), tuple(data["site"]))  # type: ignore[arg-type]


def interpreter(python: str | None) -> Interpreter:
    """The server's interpreter (``python`` None) or the named one."""
    # Paths compared unresolved: two virtualenvs link to the same real interpreter.
    if python is None or os.path.abspath(python) == os.path.abspath(sys.executable):
        return _own()
    return _probe(python)


def create(directory: Path, python: str | None = None) -> Path:
    """Build the job's virtualenv in ``directory``; returns its ``bin`` directory."""
    interp = interpreter(python)
    major, minor, micro = interp.version
    directory = Path(directory)
    shutil.rmtree(directory, ignore_errors=True)  # a job run again after a restart starts afresh
    bin_dir = directory / "bin"
    packages = directory / "lib" / f"python{major}.{minor}" / "site-packages"
    bin_dir.mkdir(parents=True, exist_ok=True)
    packages.mkdir(parents=True, exist_ok=True)
    (directory / "pyvenv.cfg").write_text(f"home = {os.path.dirname(interp.base)}\n"
                                          "include-system-site-packages = false\n"
                                          f"version = {major}.{minor}.{micro}\n")
    for name in ("python", "python3", f"python{major}.{minor}"):
        (bin_dir / name).symlink_to(interp.base)
    for name in ("pip", "pip3"):
        wrapper = bin_dir / name
        wrapper.write_text(_PIP_WRAPPER)
        wrapper.chmod(0o755)
    # addsitedir, not plain path lines: the .pth files in those directories (editable installs,
    # namespace packages) are processed as they are for the interpreter itself.
    (packages / "_stratum_image.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in interp.site_packages))
    return bin_dir
