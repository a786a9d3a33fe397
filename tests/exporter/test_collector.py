"""Tests of the disk collector on crafted mount tables and statvfs values."""

from __future__ import annotations

import errno
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import DiskCollector
from exporter.config import ExporterConfig, parse_config
from exporter.statvfs import StatvfsProber

LineBuilder = Callable[..., str]
StatvfsBuilder = Callable[..., os.statvfs_result]
MountinfoWriter = Callable[..., str]
Scrape = Callable[..., CollectorRegistry]

SPACE_METRICS = (
    "webpaas_disk_free_percent",
    "webpaas_disk_avail_bytes",
    "webpaas_disk_size_bytes",
    "webpaas_disk_readonly",
    "webpaas_disk_inodes_free_percent",
)


class FakeStatvfs:
    """statvfs that returns set values per path and raises ENOENT otherwise."""

    def __init__(self) -> None:
        self.values: dict[bytes, os.statvfs_result] = {}

    def __call__(self, path: bytes) -> os.statvfs_result:
        if path not in self.values:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return self.values[path]


@pytest.fixture
def fake_statvfs() -> FakeStatvfs:
    return FakeStatvfs()


@pytest.fixture
def scrape(
    fake_statvfs: FakeStatvfs, write_mountinfo: MountinfoWriter
) -> Iterator[Scrape]:
    """Return a function that registers a collector on mountinfo lines."""
    probers: list[StatvfsProber] = []

    def run(*lines: str, config: ExporterConfig | None = None) -> CollectorRegistry:
        prober = StatvfsProber(fake_statvfs, timeout=0.5, deadline=1.0)
        probers.append(prober)
        registry = CollectorRegistry()
        registry.register(
            DiskCollector(config or ExporterConfig(), prober, write_mountinfo(*lines))
        )
        return registry

    yield run
    for prober in probers:
        prober.close()


def labels(
    mountpoint: str, device: str = "/dev/sda1", fstype: str = "ext4", **extra: str
) -> dict[str, str]:
    return {
        "service": extra.pop("service", "host"),
        "mountpoint": mountpoint,
        "device": device,
        "fstype": fstype,
        **extra,
    }


def samples(registry: CollectorRegistry, name: str) -> list[dict[str, str]]:
    return [
        sample.labels
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


def test_collector_computes_space_values(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    fake_statvfs.values[b"/data"] = make_statvfs(
        blocks=1000, avail=50, files=200, favail=30, flag=os.ST_RDONLY
    )

    registry = scrape(line("/data"))

    mount = labels("/data")
    assert registry.get_sample_value("webpaas_disk_free_percent", mount) == 5.0
    assert registry.get_sample_value("webpaas_disk_avail_bytes", mount) == 50 * 4096
    assert registry.get_sample_value("webpaas_disk_size_bytes", mount) == 1000 * 4096
    assert registry.get_sample_value("webpaas_disk_readonly", mount) == 1
    assert registry.get_sample_value("webpaas_disk_inodes_free_percent", mount) == 15
    assert registry.get_sample_value("webpaas_disk_error", mount) == 0


def test_free_percent_counts_reserved_blocks_as_used(
    scrape: Scrape, fake_statvfs: FakeStatvfs, line: LineBuilder
) -> None:
    # 100 blocks, 10 free, 5 available to unprivileged users.
    fake_statvfs.values[b"/data"] = os.statvfs_result(
        (4096, 4096, 100, 10, 5, 10, 5, 5, 0, 255)
    )

    registry = scrape(line("/data"))

    assert registry.get_sample_value("webpaas_disk_free_percent", labels("/data")) == 5


@pytest.mark.parametrize(
    ("blocks", "avail"),
    [
        (100, 7),  # 7 / 100 * 100 is 7.000000000000001 in floating point
        (100, 29),  # and this one 28.999999999999996
        (1000, 140),
        (3, 1),  # not exact in binary: the nearest double of 100 / 3
        (98_765_432, 12_345_678),
        # exactly 4 GiB of 4 KiB blocks, as in the rules' bytes-policy test
        (123_456_796, 1_048_576),
    ],
)
def test_free_percent_is_correctly_rounded(
    blocks: int,
    avail: int,
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    # The rules compare with the threshold exactly, so a disk at exactly 7%
    # must read 7.0. Fraction converts to the nearest double.
    fake_statvfs.values[b"/data"] = make_statvfs(
        blocks=blocks, avail=avail, files=blocks, favail=avail
    )

    registry = scrape(line("/data"))

    expected = float(Fraction(avail * 100, blocks))
    mount = labels("/data")
    assert registry.get_sample_value("webpaas_disk_free_percent", mount) == expected
    assert (
        registry.get_sample_value("webpaas_disk_inodes_free_percent", mount) == expected
    )


def test_size_zero_has_no_percent_sample(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    fake_statvfs.values[b"/empty"] = make_statvfs(blocks=0, avail=0, files=0, favail=0)

    registry = scrape(line("/empty", "fuse.sshfs", "user@host:"))

    mount = labels("/empty", "user@host:", "fuse.sshfs")
    assert registry.get_sample_value("webpaas_disk_free_percent", mount) is None
    assert registry.get_sample_value("webpaas_disk_inodes_free_percent", mount) is None
    assert registry.get_sample_value("webpaas_disk_size_bytes", mount) == 0
    assert registry.get_sample_value("webpaas_disk_error", mount) == 0
    output = generate_latest(registry).decode()
    assert "NaN" not in output
    assert "Inf" not in output


def test_error_mount_has_only_error_sample(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    fake_statvfs.values[b"/ok"] = make_statvfs(blocks=10, avail=5)

    registry = scrape(line("/ok"), line("/gone", mount_id=101))

    missing_mount = labels("/gone")
    assert registry.get_sample_value("webpaas_disk_error", missing_mount) == 1
    for name in SPACE_METRICS:
        assert registry.get_sample_value(name, missing_mount) is None, name
    assert registry.get_sample_value("webpaas_disk_free_percent", labels("/ok")) == 50


def test_file_bind_mount_is_skipped(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
    tmp_path: Path,
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n", encoding="utf-8")
    volume = tmp_path / "volume"
    volume.mkdir()
    fake_statvfs.values[os.fsencode(hosts)] = make_statvfs(blocks=10, avail=5)
    fake_statvfs.values[os.fsencode(volume)] = make_statvfs(blocks=10, avail=5)
    root = "/var/lib/docker/containers/abc"

    registry = scrape(
        line(str(hosts), root=f"{root}/hosts"),
        line(str(volume), root=f"{root}/volume", mount_id=101),
    )

    mountpoints = {
        sample["mountpoint"] for sample in samples(registry, "webpaas_disk_error")
    }
    assert mountpoints == {str(volume)}


def test_duplicate_mount_published_once(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    fake_statvfs.values[b"/data"] = make_statvfs(blocks=10, avail=5)

    registry = scrape(line("/data"), line("/data", mount_id=101))

    assert samples(registry, "webpaas_disk_error") == [labels("/data")]


def test_undecodable_mount_points_with_same_label_published_once(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    make_statvfs: StatvfsBuilder,
    write_mountinfo: MountinfoWriter,
    tmp_path: Path,
) -> None:
    fake_statvfs.values[b"/srv/\xff"] = make_statvfs(blocks=10, avail=5)
    fake_statvfs.values[b"/srv/\xfe"] = make_statvfs(blocks=10, avail=1)
    table = tmp_path / "mountinfo-bytes"
    table.write_bytes(
        b"100 1 8:1 / /srv/\xff rw - ext4 /dev/sda1 rw\n"
        b"101 1 8:1 / /srv/\xfe rw - ext4 /dev/sda1 rw\n"
    )
    prober = StatvfsProber(fake_statvfs, timeout=0.5, deadline=1.0)
    registry = CollectorRegistry()
    registry.register(DiskCollector(ExporterConfig(), prober, str(table)))

    published = samples(registry, "webpaas_disk_free_percent")
    prober.close()

    assert published == [labels("/srv/\ufffd")]


def test_default_discovery_filters_pseudo_filesystems(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    for path in (b"/", b"/proc", b"/run", b"/snap/core/1", b"/merged"):
        fake_statvfs.values[path] = make_statvfs(blocks=10, avail=5)

    registry = scrape(
        line("/", mount_id=1),
        line("/proc", "proc", "proc", mount_id=2),
        line("/run", "tmpfs", "tmpfs", mount_id=3),
        line("/snap/core/1", "squashfs", "/dev/loop0", mount_id=4),
        line("/merged", "overlay", "overlay", mount_id=5),
    )

    assert samples(registry, "webpaas_disk_error") == [
        labels("/"),
        labels("/run", "tmpfs", "tmpfs"),
    ]


def test_services_claim_paths_and_static_labels_apply(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    for path in (b"/", b"/srv/db", b"/srv/web/uploads", b"/srv/other"):
        fake_statvfs.values[path] = make_statvfs(blocks=100, avail=40)
    config = parse_config(
        {
            "labels": {"project": "shop", "environment": "prod"},
            "services": [
                {"name": "database", "paths": ["/srv/db"]},
                {"name": "web", "paths": ["/srv/web/uploads", "/missing"]},
            ],
            "discovery": {"service": "platform"},
        }
    )

    registry = scrape(
        line("/", mount_id=1),
        line("/srv/db", device="/dev/sdb1", mount_id=2),
        line("/srv/other", device="/dev/sdc1", mount_id=3),
        config=config,
    )

    static = {"project": "shop", "environment": "prod"}
    assert samples(registry, "webpaas_disk_error") == [
        labels("/srv/db", "/dev/sdb1", service="database", **static),
        # a path inside the root filesystem, labelled with the path itself
        labels("/srv/web/uploads", service="web", **static),
        labels("/missing", service="web", **static),
        labels("/", service="platform", **static),
        labels("/srv/other", "/dev/sdc1", service="platform", **static),
    ]
    assert (
        registry.get_sample_value(
            "webpaas_disk_error", labels("/missing", service="web", **static)
        )
        == 1
    )
    assert registry.get_sample_value("webpaas_disk_collect_duration_seconds", static)
    assert registry.get_sample_value("webpaas_disk_statvfs_pending_calls", static) == 0


def test_discovery_disabled_publishes_services_only(
    scrape: Scrape,
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
) -> None:
    fake_statvfs.values[b"/srv/db"] = make_statvfs(blocks=100, avail=40)
    config = parse_config(
        {
            "services": [{"name": "database", "paths": ["/srv/db"]}],
            "discovery": {"enabled": False},
        }
    )

    registry = scrape(line("/", mount_id=1), line("/srv/db", mount_id=2), config=config)

    assert samples(registry, "webpaas_disk_error") == [
        labels("/srv/db", service="database")
    ]


def test_vanished_mount_leaves_no_series(
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
    write_mountinfo: MountinfoWriter,
) -> None:
    fake_statvfs.values[b"/a"] = make_statvfs(blocks=10, avail=5)
    fake_statvfs.values[b"/b"] = make_statvfs(blocks=10, avail=5)
    table = write_mountinfo(line("/a"), line("/b", mount_id=101))
    prober = StatvfsProber(fake_statvfs, timeout=0.5, deadline=1.0)
    registry = CollectorRegistry()
    registry.register(DiskCollector(ExporterConfig(), prober, table))
    first = samples(registry, "webpaas_disk_error")

    write_mountinfo(line("/a"))
    second = samples(registry, "webpaas_disk_error")
    prober.close()

    assert first == [labels("/a"), labels("/b")]
    assert second == [labels("/a")]


def test_unreadable_mount_table_still_publishes_services(
    fake_statvfs: FakeStatvfs, make_statvfs: StatvfsBuilder, tmp_path: Path
) -> None:
    fake_statvfs.values[b"/srv/db"] = make_statvfs(blocks=100, avail=40)
    config = parse_config({"services": [{"name": "db", "paths": ["/srv/db"]}]})
    prober = StatvfsProber(fake_statvfs, timeout=0.5, deadline=1.0)
    registry = CollectorRegistry()
    registry.register(DiskCollector(config, prober, str(tmp_path / "absent")))

    value = registry.get_sample_value(
        "webpaas_disk_free_percent",
        {"service": "db", "mountpoint": "/srv/db", "device": "", "fstype": ""},
    )
    prober.close()

    assert value == 40


def test_output_on_this_host_has_only_finite_values(prober: StatvfsProber) -> None:
    registry = CollectorRegistry()
    registry.register(DiskCollector(ExporterConfig(), prober))

    families = list(text_string_to_metric_families(generate_latest(registry).decode()))

    values = [sample.value for family in families for sample in family.samples]
    assert values
    assert all(math.isfinite(value) for value in values)


def test_hung_mount_does_not_stall_scrape(
    fake_statvfs: FakeStatvfs,
    line: LineBuilder,
    make_statvfs: StatvfsBuilder,
    write_mountinfo: MountinfoWriter,
) -> None:
    release = threading.Event()
    fake_statvfs.values[b"/a"] = make_statvfs(blocks=10, avail=5)
    fake_statvfs.values[b"/b"] = make_statvfs(blocks=10, avail=5)

    def statvfs(path: bytes) -> os.statvfs_result:
        if path == b"/nfs":
            release.wait()
        return fake_statvfs(path)

    table = write_mountinfo(
        line("/a", mount_id=1),
        line("/nfs", "nfs4", "server:/export", mount_id=2),
        line("/b", mount_id=3),
    )
    prober = StatvfsProber(statvfs, timeout=0.2, deadline=1.0)
    registry = CollectorRegistry()
    registry.register(DiskCollector(ExporterConfig(), prober, table))
    threads_before = threading.active_count()
    try:
        for _ in range(10):
            started = time.monotonic()
            output = generate_latest(registry).decode()
            assert time.monotonic() - started < 0.5

            assert 'mountpoint="/a"' in output
            assert 'mountpoint="/b"' in output
            nfs = {"service": "host", "mountpoint": "/nfs"}
            nfs |= {"device": "server:/export", "fstype": "nfs4"}
            assert registry.get_sample_value("webpaas_disk_error", nfs) == 1
            assert registry.get_sample_value("webpaas_disk_size_bytes", nfs) is None

        # The first worker stays blocked in the hung call; one replaced it.
        assert threading.active_count() - threads_before <= 2
    finally:
        release.set()
        prober.close()
