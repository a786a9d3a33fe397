"""A real tmpfs whose fill level a test sets.

tmpfs reserves no blocks for root, so available space equals free space and
the percentage the exporter reports is exactly what `Tmpfs.fill` asks for,
rounded to whole pages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class Tmpfs:
    """A tmpfs mounted by the test and unmounted by it."""

    def __init__(self, mountpoint: Path, size_mib: int = 16) -> None:
        self.mountpoint = mountpoint
        self.size_mib = size_mib
        self.mounted = False

    def mount(self) -> None:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={self.size_mib}m,mode=0755",
                "webpaas-e2e",
                str(self.mountpoint),
            ],
            check=True,
        )
        self.mounted = True

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", str(self.mountpoint)], check=True)
            self.mounted = False

    @property
    def fill_path(self) -> Path:
        return self.mountpoint / "fill"

    def available_percent(self) -> float:
        stats = os.statvfs(self.mountpoint)
        return 100.0 * stats.f_bavail / stats.f_blocks

    def fill(self, available_percent: float) -> float:
        """Resize the fill file so that ``available_percent`` stays available.

        Returns:
            The available percentage afterwards, as statvfs reports it.
        """
        self.fill_path.unlink(missing_ok=True)
        stats = os.statvfs(self.mountpoint)
        total = stats.f_blocks * stats.f_frsize
        used_by_others = (stats.f_blocks - stats.f_bavail) * stats.f_frsize
        size = int(total * (100.0 - available_percent) / 100.0) - used_by_others
        if size > 0:
            with self.fill_path.open("wb") as handle:
                os.posix_fallocate(handle.fileno(), 0, size)
        return self.available_percent()
