"""Archives jobs unpack (sourcedir.tar.gz, model.tar.gz): what lands where, and what is refused.

Both ways of applying tarfile's "data" rules are tested: tarfile's own filter (Python 3.11.4+) and
the member checks used where the filter does not exist yet."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from stratum.jobs import tarballs
from stratum.jobs.s3io import JobDataError
from stratum.jobs.tarballs import extract_tarball, make_tarball

WAYS = [pytest.param(True, id="tarfile-filter"), pytest.param(False, id="member-checks")]


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param and not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no extraction filters")
    monkeypatch.setattr(tarballs, "_HAS_DATA_FILTER", request.param)
    return bool(request.param)


def _archive(path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_a_directory_round_trips(tmp_path: Path, way: bool) -> None:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "pkg" / "data.bin").write_bytes(bytes(range(256)))
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "latest").symlink_to("pkg/data.bin")
    make_tarball(src, tmp_path / "code.tar.gz")
    out = tmp_path / "out"
    extract_tarball(tmp_path / "code.tar.gz", out)
    assert (out / "train.py").read_text() == "print('hi')\n"
    assert (out / "pkg" / "data.bin").read_bytes() == bytes(range(256))
    assert os.access(out / "run.sh", os.X_OK)
    assert os.readlink(out / "latest") == "pkg/data.bin"


@pytest.mark.parametrize("members", [
    pytest.param([_file("../escaped")], id="dot-dot"),
    pytest.param([_file("a/../../escaped")], id="dot-dot inside"),
    pytest.param([_link("evil", "/etc/passwd")], id="symlink to an absolute path"),
    pytest.param([_link("evil", "../../escaped")], id="symlink outside"),
    pytest.param([_link("evil", "../escaped", tarfile.LNKTYPE)], id="hard link outside"),
    pytest.param([_link("up", ".."), _file("up/escaped")], id="file through a symlink"),
])
def test_members_that_would_land_outside_refuse_the_archive(tmp_path: Path, way: bool,
                                                            members: list[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    archive = _archive(tmp_path / "bad.tar.gz", *members)
    target = tmp_path / "deep" / "target"
    with pytest.raises(JobDataError, match=r"^ClientError: bad.tar.gz could not be unpacked: "):
        extract_tarball(archive, target)
    assert not (tmp_path / "deep" / "escaped").exists()
    assert not (tmp_path / "escaped").exists()


def test_an_absolute_member_path_lands_inside(tmp_path: Path, way: bool) -> None:
    archive = _archive(tmp_path / "abs.tar.gz", _file(f"/{tmp_path.name}-absolute/model.json", b"{}"))
    extract_tarball(archive, tmp_path / "t")
    assert (tmp_path / "t" / f"{tmp_path.name}-absolute" / "model.json").read_bytes() == b"{}"
    assert not Path(f"/{tmp_path.name}-absolute").exists()


def test_special_files_refuse_the_archive(tmp_path: Path, way: bool) -> None:
    fifo = tarfile.TarInfo("pipe")
    fifo.type = tarfile.FIFOTYPE
    dev = tarfile.TarInfo("disk")
    dev.type, dev.devmajor, dev.devminor = tarfile.BLKTYPE, 8, 0
    for member in (fifo, dev):
        archive = _archive(tmp_path / "special.tar.gz", (member, None))
        with pytest.raises(JobDataError, match="could not be unpacked"):
            extract_tarball(archive, tmp_path / "t")
        assert not (tmp_path / "t" / member.name).exists()


def test_modes_and_owners_are_not_restored(tmp_path: Path, way: bool) -> None:
    setuid, _ = _file("setuid", mode=0o4777)
    setuid.uid = setuid.gid = 4242
    setuid.uname = setuid.gname = "nobody-here"
    archive = _archive(tmp_path / "modes.tar.gz", (setuid, b"#!/bin/sh\n"), _file("plain", mode=0o666))
    extract_tarball(archive, tmp_path / "t")
    st = (tmp_path / "t" / "setuid").stat()
    assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH)
    assert st.st_mode & stat.S_IXUSR
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE((tmp_path / "t" / "plain").stat().st_mode) == 0o644


def test_an_archive_that_is_not_one_is_a_client_error(tmp_path: Path, way: bool) -> None:
    for name, data in (("junk.tar.gz", b"not an archive at all" * 50),
                       ("cut.tar.gz", _archive(tmp_path / "whole.tar.gz", _file("a", os.urandom(100000))).read_bytes()[:5000])):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(JobDataError, match=rf"^ClientError: {name} could not be unpacked"):
            extract_tarball(tmp_path / name, tmp_path / "t")
