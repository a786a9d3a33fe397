"""Tests of the text-format renderer against prometheus_client and promtool."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from conftest import require_binary
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from exporter.collector import DiskCollector
from exporter.config import parse_config
from exporter.exposition import escape_label_value, render
from exporter.statvfs import StatvfsProber

MountinfoWriter = Callable[..., str]
LineBuilder = Callable[..., str]

# Mount points with every character the text format escapes, written as the
# kernel escapes them in mountinfo.
AWKWARD_MOUNT_POINTS = {
    r"/srv/new\012line": b"/srv/new\nline",
    r"/srv/back\134slash": b"/srv/back\\slash",
    r'/srv/"quoted"': b'/srv/"quoted"',
    r"/srv/caf\303\251\040au\040lait": "/srv/café au lait".encode(),
}


def parsed_samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
    return {
        (sample.name, tuple(sorted(sample.labels.items())), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if family.name != "webpaas_disk_collect_duration_seconds"
    }


def awkward_collector(
    write_mountinfo: MountinfoWriter, line: LineBuilder
) -> tuple[DiskCollector, StatvfsProber]:
    values = os.statvfs_result((4096, 4096, 100, 50, 25, 10, 5, 5, 0, 255))
    paths = set(AWKWARD_MOUNT_POINTS.values())

    def statvfs(path: bytes) -> os.statvfs_result:
        assert path in paths
        return values

    table = write_mountinfo(
        *(
            line(escaped, mount_id=100 + index)
            for index, escaped in enumerate(AWKWARD_MOUNT_POINTS)
        )
    )
    config = parse_config({"labels": {"project": 'say "hi"\\'}})
    prober = StatvfsProber(statvfs, timeout=0.5, deadline=1.0)
    return DiskCollector(config, prober, table), prober


def test_render_matches_prometheus_client(
    write_mountinfo: MountinfoWriter, line: LineBuilder
) -> None:
    collector, prober = awkward_collector(write_mountinfo, line)
    registry = CollectorRegistry()
    registry.register(collector)

    expected = parsed_samples(generate_latest(registry).decode())
    actual = parsed_samples(render(collector.collect()).decode())
    prober.close()

    assert actual == expected
    mountpoints = {dict(labels).get("mountpoint") for _, labels, _ in actual}
    assert "/srv/new\nline" in mountpoints
    assert "/srv/café au lait" in mountpoints


def test_render_passes_promtool(
    write_mountinfo: MountinfoWriter, line: LineBuilder
) -> None:
    promtool = require_binary("promtool")
    collector, prober = awkward_collector(write_mountinfo, line)

    text = render(collector.collect())
    prober.close()
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        check=False,
    )

    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == b""


def test_render_escapes_help_and_omits_empty_braces() -> None:
    family = GaugeMetricFamily("x_bytes", "line one\nback\\slash")
    family.add_metric([], 1.5)

    text = render([family]).decode()

    assert text == (
        "# HELP x_bytes line one\\nback\\\\slash\n# TYPE x_bytes gauge\nx_bytes 1.5\n"
    )


def test_escape_label_value() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
