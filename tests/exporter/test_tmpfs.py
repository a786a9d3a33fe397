"""Tests on real tmpfs mounts made by the test; they need root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from exporter.collector import DiskCollector
from exporter.config import ExporterConfig, parse_config
from exporter.statvfs import StatvfsProber

pytestmark = pytest.mark.root


def disk_labels(mountpoint: Path | str, service: str = "host") -> dict[str, str]:
    return {
        "service": service,
        "mountpoint": str(mountpoint),
        "device": "webpaas-test",
        "fstype": "tmpfs",
    }


@pytest.fixture
def bind_mount(tmp_path: Path) -> Iterator[Path]:
    """A file bind-mounted over another file, as /etc/hosts in a container."""
    source = tmp_path / "hosts.source"
    source.write_text("127.0.0.1 localhost\n", encoding="utf-8")
    target = tmp_path / "hosts"
    target.write_text("", encoding="utf-8")
    subprocess.run(["mount", "--bind", source, target], check=True)
    try:
        yield target
    finally:
        subprocess.run(["umount", target], check=True)


def collect(
    prober: StatvfsProber, config: ExporterConfig | None = None
) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(DiskCollector(config or ExporterConfig(), prober))
    return registry


def test_gauges_match_statvfs_on_filled_tmpfs(
    tmpfs: Path, prober: StatvfsProber
) -> None:
    # Fill a quarter of the 4 MiB filesystem.
    (tmpfs / "fill").write_bytes(b"\0" * (1024 * 1024))

    registry = collect(prober)
    expected = os.statvfs(tmpfs)

    labels = disk_labels(tmpfs)
    block_percent = 100 / expected.f_blocks
    free = registry.get_sample_value("webpaas_disk_free_percent", labels)
    avail = registry.get_sample_value("webpaas_disk_avail_bytes", labels)
    size = registry.get_sample_value("webpaas_disk_size_bytes", labels)
    assert free is not None
    assert avail is not None
    assert size == expected.f_blocks * expected.f_frsize
    assert abs(avail - expected.f_bavail * expected.f_frsize) <= expected.f_frsize
    assert abs(free - expected.f_bavail / expected.f_blocks * 100) <= block_percent
    assert abs(free - 75) <= block_percent
    assert registry.get_sample_value("webpaas_disk_readonly", labels) == 0
    assert registry.get_sample_value("webpaas_disk_error", labels) == 0
    inodes = registry.get_sample_value("webpaas_disk_inodes_free_percent", labels)
    assert inodes is not None
    assert 0 < inodes < 100


def test_tmpfs_as_service_path(tmpfs: Path, prober: StatvfsProber) -> None:
    config = parse_config({"services": [{"name": "cache", "paths": [str(tmpfs)]}]})

    registry = collect(prober, config)

    assert registry.get_sample_value(
        "webpaas_disk_free_percent", disk_labels(tmpfs, "cache")
    ) == pytest.approx(100, abs=1)
    assert (
        registry.get_sample_value("webpaas_disk_error", disk_labels(tmpfs, "host"))
        is None
    )


def test_mount_point_with_space_is_decoded(
    tmp_path: Path, prober: StatvfsProber
) -> None:
    mountpoint = tmp_path / "my data"
    mountpoint.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "webpaas-test", mountpoint],
        check=True,
    )
    try:
        # get_sample_value collects again, so it must run before umount.
        error = collect(prober).get_sample_value(
            "webpaas_disk_error", disk_labels(mountpoint)
        )
    finally:
        subprocess.run(["umount", mountpoint], check=True)

    assert error == 0


def test_file_bind_mount_is_not_published(
    bind_mount: Path, prober: StatvfsProber
) -> None:
    registry = collect(prober)

    mountpoints = {
        sample.labels.get("mountpoint")
        for family in registry.collect()
        for sample in family.samples
    }
    assert str(bind_mount) not in mountpoints
    assert "/" in mountpoints
