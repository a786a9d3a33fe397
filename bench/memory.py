"""Memory over time: the bridge's RSS across 1 million alerts on 100,000 disks.

``webpaas-bridge`` runs on a SQLite file on disk without integrations, so
the figures are those of ingest alone (the outbox is measured by
bench/storm.py). The benchmark posts the alerts in phases of one alert per
disk, in messages of 1,000 alerts: the first phase takes every disk from ok
to warning, and each later phase repeats the same firing alerts with
another ``free_percent``, so every repeat rewrites each disk's stored state
but changes no level. It samples the bridge's RSS (VmRSS) after each phase
and prints the slope over the repeat phases after the first.

Run: ``.venv/bin/python bench/memory.py`` (a few minutes; ``--smoke`` for
1,000 disks).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import harness

# Flat means less than this growth per 100,000 repeated alerts.
GOAL_SLOPE_MIB = 0.5


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--disks", type=int, default=100_000)
    parser.add_argument(
        "--phases", type=int, default=10, help="phases of one alert per disk"
    )
    parser.add_argument("--batch", type=int, default=1000, help="alerts per message")
    harness.add_workdir_option(parser)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.disks = 1000
        arguments.batch = 100
    return arguments


def send_phase(bridge: harness.Bridge, phase: int, disks: int, batch: int) -> int:
    """Post one alert for every disk; return the transitions the bridge reported."""
    # Alternate the value so that every repeat changes the stored annotations.
    free_percent = f"{15 + (phase % 2) / 10:.2f}"
    transitions = 0
    for start in range(0, disks, batch):
        alerts = [
            harness.alert(harness.disk_labels(index), free_percent=free_percent)
            for index in range(start, min(start + batch, disks))
        ]
        status, answer = bridge.post(harness.message(alerts))
        if status != 200:
            raise RuntimeError(f"the bridge returned HTTP {status}: {answer}")
        transitions += answer["transitions"]
    return transitions


def slope(xs: list[float], ys: list[float]) -> float:
    """Return the least-squares slope of ys over xs."""
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if not spread:
        return 0.0
    return (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    )


def main() -> int:
    arguments = parse_arguments()
    harness.print_header("memory over time", [sys.executable, *sys.argv])
    workdir = Path(
        tempfile.mkdtemp(prefix="webpaas-bench-memory-", dir=arguments.workdir)
    )
    print(
        f"load: {arguments.phases} phases x {arguments.disks} disks, "
        f"{arguments.batch} alerts per message"
    )
    print(f"{'phase':>5} {'alerts':>10} {'transitions':>11} {'RSS MiB':>8} {'s':>6}")
    sent = 0
    samples: list[tuple[int, float]] = []
    try:
        with harness.Bridge(workdir, None) as bridge:
            print(f"{0:>5} {0:>10} {0:>11} {bridge.rss_kib() / 1024:>8.1f} {0:>6}")
            for phase in range(1, arguments.phases + 1):
                started = time.monotonic()
                transitions = send_phase(
                    bridge, phase, arguments.disks, arguments.batch
                )
                sent += arguments.disks
                rss_mib = bridge.rss_kib() / 1024
                samples.append((sent, rss_mib))
                print(
                    f"{phase:>5} {sent:>10} {transitions:>11} {rss_mib:>8.1f} "
                    f"{time.monotonic() - started:>6.1f}"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    # The first repeat phase still grows caches and allocator arenas, so the
    # slope starts after it.
    repeats = samples[2:]
    if len(repeats) < 2:
        print("error: at least 4 phases are needed for a slope")
        return 1
    per_alert = slope([float(x) for x, _ in repeats], [y for _, y in repeats])
    per_100k = per_alert * 100_000
    growth = samples[-1][1] - samples[1][1]
    print()
    print(
        f"RSS after the first phase {samples[0][1]:.1f} MiB, after the last "
        f"{samples[-1][1]:.1f} MiB; over the repeat phases {growth:+.1f} MiB, "
        f"slope {per_100k:+.3f} MiB per 100,000 alerts"
    )
    print(
        harness.verdict(
            "RSS flat with repeats",
            per_100k < GOAL_SLOPE_MIB,
            f"slope {per_100k:+.3f} MiB per 100,000 alerts, limit {GOAL_SLOPE_MIB}",
        )
    )
    return 0


if __name__ == "__main__":
    harness.run_main(main)
