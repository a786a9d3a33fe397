"""The Prometheus collector that publishes free space for every monitored path.

Every scrape reads the mount table, probes each path with statvfs(2) and
yields new metric families, so a mount that goes away leaves no stale
series. The values follow statvfs(3): sizes are counts of ``f_frsize``
blocks, and ``f_bavail`` is the space available to unprivileged users,
so blocks reserved for root count as used.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter import mounts
from exporter.config import DISK_LABELS, ExporterConfig
from exporter.statvfs import Request, Result, StatvfsProber

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """A path to probe and the labels of its samples."""

    service: str
    mountpoint: str
    device: str
    fstype: str
    request: Request

    @property
    def label_values(self) -> tuple[str, str, str, str]:
        """Values of the disk labels, in the order of DISK_LABELS."""
        return (self.service, self.mountpoint, self.device, self.fstype)


class DiskCollector(Collector):
    """Collector of the webpaas_disk_* metrics.

    Args:
        config: services, discovery rules and static labels.
        prober: runs statvfs with a timeout; the collector does not close it.
        mountinfo_path: the mount table to read, replaceable in tests.
    """

    def __init__(
        self,
        config: ExporterConfig,
        prober: StatvfsProber,
        mountinfo_path: str = mounts.MOUNTINFO_PATH,
    ) -> None:
        self._config = config
        self._prober = prober
        self._mountinfo_path = mountinfo_path
        self._static_names = sorted(config.labels)
        self._static_values = [config.labels[name] for name in self._static_names]

        # Scrapes may arrive on several server threads at once.
        self._lock = threading.Lock()
        self._table: bytes | None = None
        self._targets: list[Target] = []
        self._table_error: str | None = None
        self._failing: set[tuple[str, str, str, str]] = set()

    def describe(self) -> Iterable[Metric]:
        """Return nothing, so that registering does not run a first collection."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Probe every target and return fresh metric families."""
        started = time.perf_counter()
        with self._lock:
            targets = self._current_targets()
            results = self._prober.probe([target.request for target in targets])
            families = self._families(targets, results)

        pending = self._gauge(
            "webpaas_disk_statvfs_pending_calls",
            "statvfs calls that timed out and have not returned; each holds a thread.",
            [],
        )
        pending.add_metric(self._static_values, self._prober.pending_calls)
        duration = self._gauge(
            "webpaas_disk_collect_duration_seconds",
            "Seconds this collection of disk metrics took.",
            [],
        )
        duration.add_metric(self._static_values, time.perf_counter() - started)
        return [*families, pending, duration]

    def _current_targets(self) -> list[Target]:
        try:
            table = mounts.read_mountinfo(self._mountinfo_path)
        except OSError as error:
            self._log_table_error(str(error))
            table = b""
        else:
            self._log_table_error(None)

        # The mount table rarely changes between scrapes, so the parsed
        # targets are reused while its bytes stay the same.
        if table != self._table:
            self._table = table
            self._targets = build_targets(
                self._config, mounts.visible_mounts(mounts.parse_mountinfo(table))
            )
        return self._targets

    def _log_table_error(self, error: str | None) -> None:
        if error is not None and error != self._table_error:
            logger.error(
                "cannot read mount table %s: %s; publishing service paths only",
                self._mountinfo_path,
                error,
            )
        self._table_error = error

    def _families(
        self, targets: list[Target], results: dict[Request, Result]
    ) -> list[GaugeMetricFamily]:
        free = self._gauge(
            "webpaas_disk_free_percent",
            "Space available to unprivileged users in percent of the filesystem "
            "size (f_bavail / f_blocks * 100); reserved blocks count as used.",
        )
        avail = self._gauge(
            "webpaas_disk_avail_bytes",
            "Space available to unprivileged users in bytes (f_bavail * f_frsize).",
        )
        size = self._gauge(
            "webpaas_disk_size_bytes",
            "Size of the filesystem in bytes (f_blocks * f_frsize).",
        )
        readonly = self._gauge(
            "webpaas_disk_readonly",
            "1 when the filesystem is mounted read-only, else 0.",
        )
        inodes = self._gauge(
            "webpaas_disk_inodes_free_percent",
            "Inodes available to unprivileged users in percent of all inodes "
            "(f_favail / f_files * 100).",
        )
        error = self._gauge(
            "webpaas_disk_error",
            "1 when the last statvfs of the path failed or timed out, else 0.",
        )

        failing = set()
        for target in targets:
            result = results[target.request]
            if result.not_directory:
                continue
            labels = [*target.label_values, *self._static_values]
            if result.statvfs is None:
                failing.add(target.label_values)
                error.add_metric(labels, 1)
                continue

            st = result.statvfs
            error.add_metric(labels, 0)
            avail.add_metric(labels, st.f_bavail * st.f_frsize)
            size.add_metric(labels, st.f_blocks * st.f_frsize)
            readonly.add_metric(labels, 1 if st.f_flag & os.ST_RDONLY else 0)
            # A size or inode count of 0 (ramfs, some FUSE filesystems) would
            # give NaN, so that sample is left out. Multiplying the integers
            # first leaves one correctly rounded division. A disk at exactly
            # 7% then reads 7.0, not 7.000000000000001, which the rules'
            # comparison with a threshold of 7 needs.
            if st.f_blocks > 0:
                free.add_metric(labels, st.f_bavail * 100 / st.f_blocks)
            if st.f_files > 0:
                inodes.add_metric(labels, st.f_favail * 100 / st.f_files)

        self._log_failures(targets, results, failing)
        return [free, avail, size, readonly, inodes, error]

    def _log_failures(
        self,
        targets: list[Target],
        results: dict[Request, Result],
        failing: set[tuple[str, str, str, str]],
    ) -> None:
        # Only changes are logged, so a mount that stays broken logs once.
        for target in targets:
            key = target.label_values
            if key in failing and key not in self._failing:
                logger.warning(
                    "statvfs failed for service %s mount point %s: %s",
                    target.service,
                    target.mountpoint,
                    results[target.request].error,
                )
            elif key in self._failing and key not in failing:
                logger.info(
                    "statvfs recovered for service %s mount point %s",
                    target.service,
                    target.mountpoint,
                )
        self._failing = failing

    def _gauge(
        self, name: str, documentation: str, disk_labels: list[str] | None = None
    ) -> GaugeMetricFamily:
        names = DISK_LABELS if disk_labels is None else disk_labels
        return GaugeMetricFamily(
            name, documentation, labels=[*names, *self._static_names]
        )


def build_targets(config: ExporterConfig, visible: list[mounts.Mount]) -> list[Target]:
    """List what to probe: every service path, then the discovered mounts.

    A service path that is a mount point is labelled with that mount. A
    service path inside a mount is probed itself, which reports the
    filesystem that contains it, with the device and type of the containing
    mount. Discovered mounts that a service claims are not repeated under the
    discovery service.
    """
    targets: list[Target] = []
    claimed: set[bytes] = set()
    for service in config.services:
        for path in service.paths:
            encoded = os.fsencode(path)
            claimed.add(encoded)
            mount = mounts.containing_mount(path, visible)
            # Only a mount point can be a bind mount of a single file.
            check_directory = (
                mount is not None and mount.path == encoded and mount.is_bind_of_subtree
            )
            targets.append(
                Target(
                    service=service.name,
                    mountpoint=path,
                    device=mount.device if mount else "",
                    fstype=mount.fstype if mount else "",
                    request=Request(encoded, check_directory),
                )
            )

    discovery = config.discovery
    if discovery.enabled:
        for mount in visible:
            if mount.path in claimed or not discovery.filter.accepts(mount):
                continue
            targets.append(
                Target(
                    service=discovery.service,
                    mountpoint=mount.mountpoint,
                    device=mount.device,
                    fstype=mount.fstype,
                    request=Request(mount.path, mount.is_bind_of_subtree),
                )
            )
    return _unique(targets)


def _unique(targets: list[Target]) -> list[Target]:
    # Two mount points whose bytes differ only where they are not UTF-8
    # decode to the same label value, and a scrape with a repeated series is
    # rejected whole by Prometheus, so the later one is dropped.
    unique: dict[tuple[str, str, str, str], Target] = {}
    for target in targets:
        if target.label_values in unique:
            logger.warning(
                "mount point %s of service %s has the labels of an earlier one; "
                "skipping it",
                target.mountpoint,
                target.service,
            )
            continue
        unique[target.label_values] = target
    return list(unique.values())
