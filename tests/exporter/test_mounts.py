"""Tests of mount table parsing, de-duplication and filters."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from exporter import mounts

LineBuilder = Callable[..., str]


def parse_one(line: str | bytes) -> mounts.Mount:
    data = line.encode() if isinstance(line, str) else line
    parsed = mounts.parse_mountinfo(data)
    assert len(parsed) == 1
    return parsed[0]


@pytest.mark.parametrize(
    ("escaped", "decoded"),
    [
        (r"/srv/my\040data", "/srv/my data"),  # space
        (r"/srv/tab\011here", "/srv/tab\there"),  # tab
        (r"/srv/line\012break", "/srv/line\nbreak"),  # newline
        (r"/srv/back\134slash", "/srv/back\\slash"),  # backslash
        (r"/srv/\040\040two", "/srv/  two"),  # repeated escapes
        (r"/srv/\134040", "/srv/\\040"),  # an escaped backslash before digits
        ("/srv/plain", "/srv/plain"),
    ],
)
def test_parse_mountinfo_decodes_escapes(
    escaped: str, decoded: str, line: LineBuilder
) -> None:
    mount = parse_one(line(escaped))

    assert mount.mountpoint == decoded
    assert mount.path == decoded.encode()


def test_parse_mountinfo_decodes_escaped_device(line: LineBuilder) -> None:
    mount = parse_one(line("/mnt/share", "cifs", r"//server/my\040share"))

    assert mount.device == "//server/my share"


def test_parse_mountinfo_replaces_invalid_utf8() -> None:
    line = b"100 1 8:1 / /srv/caf\xe9\\040x rw - ext4 /dev/sd\xff rw"

    mount = parse_one(line)

    assert mount.mountpoint == "/srv/caf\ufffd x"
    assert mount.path == b"/srv/caf\xe9 x"
    assert mount.device == "/dev/sd\ufffd"


def test_parse_mountinfo_reads_fields_after_optional_fields() -> None:
    line = "36 35 98:0 /sub /mnt/a rw,noatime master:1 shared:2 - xfs /dev/vdb rw"

    mount = parse_one(line)

    assert mount.mount_id == 36
    assert mount.root == "/sub"
    assert mount.mountpoint == "/mnt/a"
    assert mount.fstype == "xfs"
    assert mount.device == "/dev/vdb"
    assert mount.is_bind_of_subtree


def test_parse_mountinfo_reads_line_without_optional_fields() -> None:
    mount = parse_one("22 27 0:21 / /proc rw,relatime - proc proc rw")

    assert mount.fstype == "proc"
    assert not mount.is_bind_of_subtree


@pytest.mark.parametrize(
    "malformed",
    [
        "garbage",  # one field
        "22 27 0:21 / /proc rw,relatime proc proc rw",  # no separator
        "22 27 0:21 / /proc rw,relatime -",  # nothing after the separator
        "x 27 0:21 / /proc rw - proc proc rw",  # mount ID not a number
    ],
)
def test_parse_mountinfo_skips_malformed_lines(
    malformed: str, line: LineBuilder
) -> None:
    data = f"{malformed}\n{line('/')}\n".encode()

    parsed = mounts.parse_mountinfo(data)

    assert [mount.mountpoint for mount in parsed] == ["/"]


def test_visible_mounts_keeps_one_entry_per_mount_point(line: LineBuilder) -> None:
    data = "\n".join(
        [
            line("/", device="/dev/sda1", mount_id=1),
            line("/data", device="/dev/sdb1", mount_id=2),
            line("/data", device="/dev/sdb1", mount_id=3),
            line("/data", device="/dev/sdc1", mount_id=4),
        ]
    ).encode()

    visible = mounts.visible_mounts(mounts.parse_mountinfo(data))

    assert [(mount.mountpoint, mount.mount_id) for mount in visible] == [
        ("/", 1),
        ("/data", 4),
    ]
    assert visible[1].device == "/dev/sdc1"


@pytest.mark.parametrize(
    ("mountpoint", "fstype", "kept"),
    [
        ("/", "ext4", True),
        ("/srv/data", "xfs", True),
        ("/run", "tmpfs", True),  # tmpfs fills like a disk
        ("/tmp", "tmpfs", True),
        ("/mnt/nfs", "nfs4", True),
        ("/proc", "proc", False),
        ("/sys", "sysfs", False),
        ("/sys/fs/cgroup", "tmpfs", False),  # under /sys
        ("/sys/fs/cgroup/memory", "cgroup", False),
        ("/cgroup2", "cgroup2", False),
        ("/dev", "devtmpfs", False),
        ("/dev/shm", "tmpfs", False),  # under /dev
        ("/dev/pts", "devpts", False),
        ("/dev/mqueue", "mqueue", False),
        ("/sys/kernel/debug", "debugfs", False),
        ("/sys/kernel/tracing", "tracefs", False),
        ("/sys/kernel/security", "securityfs", False),
        ("/sys/fs/bpf", "bpf", False),
        ("/sys/fs/pstore", "pstore", False),
        ("/sys/kernel/config", "configfs", False),
        ("/sys/fs/fuse/connections", "fusectl", False),
        ("/proc/sys/fs/binfmt_misc", "binfmt_misc", False),
        ("/dev/hugepages", "hugetlbfs", False),
        ("/run/user/1000/doc", "autofs", False),
        ("/run/netns/a", "nsfs", False),
        ("/run/rpc_pipefs", "rpc_pipefs", False),
        ("/merged", "overlay", False),  # container layers
        ("/media/image", "squashfs", False),  # always full
        ("/media/erofs", "erofs", False),  # always full
        ("/media/cdrom", "iso9660", False),
        ("/mnt/ram", "ramfs", False),  # reports size 0
        ("/run/credentials/getty.service", "tmpfs", False),
        ("/var/lib/docker/overlay2/abc/merged", "ext4", False),
        ("/var/lib/docker", "ext4", True),  # the directory itself is a real disk
        ("/var/lib/containers/storage/overlay", "xfs", False),
        ("/snap/core/123", "ext4", False),
    ],
)
def test_default_filter(
    mountpoint: str, fstype: str, kept: bool, line: LineBuilder
) -> None:
    mount = parse_one(line(mountpoint, fstype))

    assert mounts.MountFilter().accepts(mount) is kept


def test_filter_include_and_exclude_combine(line: LineBuilder) -> None:
    mount_filter = mounts.MountFilter(
        mount_points_include=re.compile(r"^/srv/"),
        mount_points_exclude=re.compile(r"/cache$"),
        fs_types_include=re.compile(r"^(ext4|xfs)$"),
        fs_types_exclude=None,
    )

    def kept(mountpoint: str, fstype: str) -> bool:
        return mount_filter.accepts(parse_one(line(mountpoint, fstype)))

    assert kept("/srv/a", "ext4")
    assert not kept("/", "ext4")
    assert not kept("/srv/cache", "xfs")
    assert not kept("/srv/b", "tmpfs")


def test_containing_mount_matches_whole_components(line: LineBuilder) -> None:
    parsed = mounts.parse_mountinfo(
        "\n".join(
            [
                line("/", mount_id=1),
                line("/srv", mount_id=2),
                line("/srv/data", mount_id=3),
            ]
        ).encode()
    )

    def mount_id(path: str) -> int | None:
        mount = mounts.containing_mount(path, parsed)
        return None if mount is None else mount.mount_id

    assert mount_id("/srv/data/db") == 3
    assert mount_id("/srv/data") == 3
    assert mount_id("/srv/database") == 2
    assert mount_id("/srvx") == 1
    assert mount_id("/") == 1
    assert mounts.containing_mount("/x", []) is None


def test_read_mountinfo_reads_this_process_table() -> None:
    parsed = mounts.parse_mountinfo(mounts.read_mountinfo())

    assert "/" in {mount.mountpoint for mount in parsed}
