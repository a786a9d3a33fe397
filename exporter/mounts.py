"""Read the kernel's mount table and choose the mounts worth monitoring.

The source is /proc/self/mountinfo, whose format is documented in
proc(5): mount ID, parent ID, major:minor, root, mount point, mount options,
optional fields, a "-" separator, filesystem type, mount source and
superblock options. Fields are separated by spaces, so the kernel escapes a
space, tab, newline and backslash inside a field as an octal sequence such
as ``\\040``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MOUNTINFO_PATH = "/proc/self/mountinfo"

# The defaults of node_exporter's filesystem collector (defMountPointsExcluded
# and defFSTypesExcluded in collector/filesystem_linux.go) with four additions.
# erofs is a read-only image format that is always full, like squashfs. ramfs
# reports a size of 0, so it has no free percentage. efivarfs holds firmware
# variables. /snap holds snap packages, which are squashfs or FUSE images.
# tmpfs stays monitored because it fills like any disk.
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|sys|run/credentials/.+|var/lib/docker/.+"
    r"|var/lib/containers/storage/.+|snap/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs"
    r"|efivarfs|erofs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs"
    r"|pstore|ramfs|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$"
)

_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    """One entry of the mount table.

    ``mountpoint`` is the decoded text used as a label value, and ``path`` the
    exact bytes to pass to system calls, which differ when the mount point is
    not valid UTF-8.
    """

    mount_id: int
    root: str
    mountpoint: str
    path: bytes
    device: str
    fstype: str

    @property
    def is_bind_of_subtree(self) -> bool:
        """True when the mount shows a subtree of its filesystem, as a bind mount."""
        return self.root != "/"


@dataclass(frozen=True)
class MountFilter:
    """Regular expressions that select discovered mounts, as in node_exporter.

    A mount is kept when its mount point and filesystem type match the include
    patterns (when set) and match no exclude pattern. Patterns are searched,
    not fully matched, so they need ``^`` and ``$`` anchors to match whole
    values. ``None`` disables a pattern.
    """

    mount_points_include: re.Pattern[str] | None = None
    mount_points_exclude: re.Pattern[str] | None = re.compile(
        DEFAULT_MOUNT_POINTS_EXCLUDE
    )
    fs_types_include: re.Pattern[str] | None = None
    fs_types_exclude: re.Pattern[str] | None = re.compile(DEFAULT_FS_TYPES_EXCLUDE)

    def accepts(self, mount: Mount) -> bool:
        """Return whether discovery keeps ``mount``."""
        return _selected(
            mount.mountpoint, self.mount_points_include, self.mount_points_exclude
        ) and _selected(mount.fstype, self.fs_types_include, self.fs_types_exclude)


def _selected(
    value: str, include: re.Pattern[str] | None, exclude: re.Pattern[str] | None
) -> bool:
    if include is not None and include.search(value) is None:
        return False
    return exclude is None or exclude.search(value) is None


def unescape(field: bytes) -> bytes:
    """Decode the kernel's octal escapes (``\\040`` is a space) in one field."""
    if b"\\" not in field:
        return field
    return _OCTAL_ESCAPE.sub(lambda match: bytes([int(match[1], 8) & 0xFF]), field)


def to_text(field: bytes) -> str:
    """Decode a field for use as a label, replacing bytes that are not UTF-8."""
    return field.decode("utf-8", errors="replace")


def parse_mountinfo(data: bytes) -> list[Mount]:
    """Parse the contents of a mountinfo file into mounts, in table order.

    Malformed lines are skipped with a warning, so that one odd entry does
    not fail a scrape.
    """
    mounts = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        mount = _parse_line(line)
        if mount is None:
            logger.warning(
                "skipping malformed mountinfo line %d: %r", number, line[:200]
            )
            continue
        mounts.append(mount)
    return mounts


def _parse_line(line: bytes) -> Mount | None:
    fields = line.split(b" ")

    # Optional fields (shared:N, master:N, ...) come between the mount options
    # and the "-" separator, so the fields after it are found by position
    # from the separator.
    try:
        separator = fields.index(b"-", 6)
    except ValueError:
        return None
    if len(fields) < separator + 3 or not fields[0].isdigit():
        return None

    path = unescape(fields[4])
    return Mount(
        mount_id=int(fields[0]),
        root=to_text(unescape(fields[3])),
        mountpoint=to_text(path),
        path=path,
        device=to_text(unescape(fields[separator + 2])),
        fstype=to_text(unescape(fields[separator + 1])),
    )


def visible_mounts(mounts: Iterable[Mount]) -> list[Mount]:
    """Keep one mount per mount point: the last one listed.

    A mount point that appears twice is either the same filesystem listed
    again (a repeated bind or mount propagation) or a filesystem mounted over
    another. statvfs(2) on the path reaches only the top of that stack, which
    the kernel lists after the mounts it covers. Publishing both would emit
    the same values twice or under the wrong device.
    """
    by_path: dict[bytes, Mount] = {}
    for mount in mounts:
        by_path.pop(mount.path, None)
        by_path[mount.path] = mount
    return list(by_path.values())


def read_mountinfo(path: str = MOUNTINFO_PATH) -> bytes:
    """Read the whole mount table, which the kernel generates as it is read."""
    with open(path, "rb") as file:
        return file.read()


def containing_mount(path: str, mounts: Iterable[Mount]) -> Mount | None:
    """Return the mount whose mount point is the longest prefix of ``path``.

    The match is by path components on the text as written, without resolving
    symbolic links, so ``/srv/data`` is inside ``/srv`` but not inside
    ``/sr``.
    """
    best: Mount | None = None
    for mount in mounts:
        prefix = mount.mountpoint.rstrip("/") + "/"
        if (path == mount.mountpoint or path.startswith(prefix)) and (
            best is None or len(mount.mountpoint) >= len(best.mountpoint)
        ):
            best = mount
    return best
