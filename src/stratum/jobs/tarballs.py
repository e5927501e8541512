"""The tar.gz archives a job reads and writes: the SDK's sourcedir.tar.gz, model.tar.gz."""

from __future__ import annotations

import copy
import gzip
import os
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from stratum.jobs.s3io import JobDataError

# tarfile's extraction filters arrived in Python 3.11.4; before that, _data_members does the same checks.
_HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


def make_tarball(directory: Path, dest: Path) -> None:
    with tarfile.open(dest, "w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)


def extract_tarball(archive: Path, target: Path) -> None:
    """Unpack an archive from the object store into ``target`` under tarfile's "data" rules: a
    member with an absolute path, one that would land outside ``target`` (itself or through a
    link) or a device file refuses the archive; owners are not restored, nor setuid/setgid bits
    or group/other write permission. A refused or unreadable archive is the job's ClientError."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            if _HAS_DATA_FILTER:
                tar.extractall(target, filter="data")
            else:
                tar.extractall(target, members=_data_members(tar, target))
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise JobDataError(f"ClientError: {archive.name} could not be unpacked: {exc}") from None


def _data_members(tar: tarfile.TarFile, target: Path) -> Iterator[tarfile.TarInfo]:
    """The archive's members as tarfile.data_filter passes them (for Python < 3.11.4)."""
    root = os.path.realpath(target)

    def inside(path: str) -> bool:
        return os.path.commonpath([root, os.path.realpath(path)]) == root

    for member in tar.getmembers():
        name = member.name.lstrip("/" + os.sep)  # "/etc/x" lands in target/etc/x, as with the filter
        if os.path.isabs(name):
            raise tarfile.TarError(f"member {member.name!r} has an absolute path")
        if not inside(os.path.join(root, name)):
            raise tarfile.TarError(f"member {member.name!r} would be extracted outside the destination")
        mode = member.mode & 0o755  # no setuid/setgid/sticky, no group/other write
        if member.isreg() or member.islnk():
            if not mode & 0o100:
                mode &= ~0o111  # executable by others only if by its owner
            mode |= 0o600
        elif member.isdir():
            mode |= 0o700
        elif not member.issym():
            raise tarfile.TarError(f"member {member.name!r} is a special file")
        if member.issym() or member.islnk():
            if os.path.isabs(member.linkname):
                raise tarfile.TarError(f"member {member.name!r} is a link to an absolute path")
            base = os.path.join(root, os.path.dirname(name)) if member.issym() else root
            if not inside(os.path.join(base, member.linkname)):
                raise tarfile.TarError(f"member {member.name!r} links outside the destination")
        member = copy.copy(member)
        member.name, member.mode = name, mode
        # The extracting user owns what is extracted (as root, tarfile would restore the archive's owners).
        member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
        yield member
