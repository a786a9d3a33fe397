"""Fixtures of the exporter tests: mountinfo files, probers, tmpfs mounts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from exporter.statvfs import StatvfsProber

MountinfoWriter = Callable[..., str]
LineBuilder = Callable[..., str]
StatvfsBuilder = Callable[..., os.statvfs_result]


def _mountinfo_line(
    mountpoint: str,
    fstype: str = "ext4",
    device: str = "/dev/sda1",
    *,
    mount_id: int = 100,
    root: str = "/",
) -> str:
    """Build one /proc/self/mountinfo line; arguments must be escaped already."""
    return (
        f"{mount_id} 1 8:1 {root} {mountpoint} rw,relatime shared:1 - "
        f"{fstype} {device} rw"
    )


def _statvfs_values(
    blocks: int,
    avail: int,
    *,
    frsize: int = 4096,
    files: int = 1000,
    favail: int = 500,
    flag: int = 0,
) -> os.statvfs_result:
    """Build a statvfs result with the given block and inode counts."""
    return os.statvfs_result(
        (frsize, frsize, blocks, avail, avail, files, favail, favail, flag, 255)
    )


@pytest.fixture
def line() -> LineBuilder:
    """Return the builder of one mountinfo line, with escaped arguments."""
    return _mountinfo_line


@pytest.fixture
def make_statvfs() -> StatvfsBuilder:
    """Return the builder of a statvfs result from block and inode counts."""
    return _statvfs_values


@pytest.fixture
def write_mountinfo(tmp_path: Path) -> MountinfoWriter:
    """Return a function that writes mountinfo lines to a file and returns its path."""

    def write(*lines: str) -> str:
        path = tmp_path / "mountinfo"
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def prober() -> Iterator[StatvfsProber]:
    """A prober with short timeouts that is closed after the test."""
    instance = StatvfsProber(timeout=0.3, deadline=1.0)
    yield instance
    instance.close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted under the test's directory, unmounted afterwards."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "webpaas-test", mountpoint],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", mountpoint], check=True, capture_output=True)
