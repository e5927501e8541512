"""Loaded by a job's Python processes when no private mount namespace is available.

Redirects file-system calls on /opt/ml/... to the job directory named by STRATUM_OPT_ML, so a
script that hard-codes "/opt/ml/processing/input" reads the job's real input. It covers Python's
own file API (open, io, os, os.path, pathlib, shutil, glob, tarfile, pandas/numpy readers built on
them); native libraries that open paths themselves do not see it, which is why Stratum prefers the
mount namespace (see stratum/jobs/process.py).
"""

import builtins
import io
import os

_ROOT = os.environ.get("STRATUM_OPT_ML")


def _install(root: str) -> None:
    prefix, broot, bprefix = "/opt/ml", root.encode(), b"/opt/ml"

    def remap(path):  # type: ignore[no-untyped-def]
        if isinstance(path, int):
            return path
        try:
            value = os.fspath(path)
        except TypeError:
            return path
        if isinstance(value, str):
            if value == prefix or value.startswith(prefix + "/"):
                return root + value[len(prefix):]
        elif value == bprefix or value.startswith(bprefix + b"/"):
            return broot + value[len(bprefix):]
        return path

    def one(func):  # type: ignore[no-untyped-def]
        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            if args:
                args = (remap(args[0]), *args[1:])
            elif "path" in kwargs:
                kwargs["path"] = remap(kwargs["path"])
            return func(*args, **kwargs)
        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        wrapper.__doc__ = getattr(func, "__doc__", None)
        return wrapper

    def two(func):  # type: ignore[no-untyped-def]
        def wrapper(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
            return func(remap(src), remap(dst), *args, **kwargs)
        wrapper.__name__ = getattr(func, "__name__", "wrapper")
        return wrapper

    original_open = builtins.open

    def patched_open(file=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if file is None and "file" in kwargs:
            file = kwargs.pop("file")
        return original_open(remap(file), *args, **kwargs)

    builtins.open = patched_open
    io.open = patched_open
    for name in ("open", "stat", "lstat", "listdir", "scandir", "mkdir", "remove", "unlink", "rmdir", "chdir",
                 "access", "chmod", "utime", "truncate", "readlink", "statvfs"):
        if hasattr(os, name):
            _swap(name, one(getattr(os, name)))
    for name in ("rename", "replace", "link", "symlink"):
        _swap(name, two(getattr(os, name)))


def _swap(name, wrapper):  # type: ignore[no-untyped-def]
    """Replace os.<name>, keeping its membership in os.supports_* (shutil and pathlib consult them)."""
    original = getattr(os, name)
    for capability in ("supports_dir_fd", "supports_fd", "supports_follow_symlinks", "supports_effective_ids"):
        members = getattr(os, capability, None)
        if isinstance(members, set) and original in members:
            members.add(wrapper)
    setattr(os, name, wrapper)


if _ROOT:
    _install(_ROOT.rstrip("/"))
