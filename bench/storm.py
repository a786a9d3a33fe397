"""Storm: one message with 10,000 alerts for 10,000 disks, then its deliveries.

The bridge runs as ``webpaas-bridge`` on a SQLite file on disk with one
webhook integration that points at the local receiver of bench/receiver.py,
and the delivery settings at their defaults. The benchmark posts one
Alertmanager message whose alerts each take a different disk from ok to
warning, times the response (parse, state machine and the durable commit of
10,000 states, events and deliveries), then times the deliveries until the
receiver has them all.

Run: ``.venv/bin/python bench/storm.py`` (``--smoke`` for 200 alerts).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import harness

GOAL_ANSWER_SECONDS = 1.0
GOAL_DELIVERIES_PER_SECOND = 1000.0


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts and disks")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for deliveries"
    )
    harness.add_workdir_option(parser)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.alerts = 200
        arguments.timeout = 30
    return arguments


def wait_for_deliveries(
    receiver: harness.Receiver, expected: int, timeout: float
) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    stats = receiver.stats()
    while stats["count"] < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        stats = receiver.stats()
    return stats


def main() -> int:
    arguments = parse_arguments()
    harness.print_header("storm", [sys.executable, *sys.argv])
    workdir = Path(
        tempfile.mkdtemp(prefix="webpaas-bench-storm-", dir=arguments.workdir)
    )
    print(f"store: {workdir} on {harness.filesystem_type(workdir)}")
    count = arguments.alerts
    document = harness.message(
        [harness.alert(harness.disk_labels(index)) for index in range(count)]
    )
    body_bytes = len(json.dumps(document))
    try:
        with (
            harness.Receiver(workdir) as receiver,
            harness.Bridge(workdir, f"{receiver.url}/hook") as bridge,
        ):
            posted = time.time()
            status, answer = bridge.post(document, timeout=120)
            answered = time.time()
            if status != 200:
                print(f"error: the bridge responded {status}: {answer}")
                return 1
            stats = wait_for_deliveries(receiver, count, arguments.timeout)
            rss_kib = bridge.rss_kib()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    answer_seconds = answered - posted
    received = stats["count"]
    print(f"message: {count} alerts, {body_bytes / 1024 / 1024:.1f} MiB of JSON")
    print(
        f"response: {answer_seconds:.3f} s, status {status}, "
        f"transitions {answer['transitions']}"
    )
    if not received:
        print("deliveries: none arrived")
        return 1
    all_seconds = stats["last"] - answered
    flow_seconds = stats["last"] - stats["first"]
    first_latency = stats["first"] - answered
    overall_rate = received / all_seconds if all_seconds > 0 else float("inf")
    flow_rate = received / flow_seconds if flow_seconds > 0 else float("inf")
    print(
        f"deliveries: {received} of {count} in {all_seconds:.2f} s after the "
        f"response = {overall_rate:.0f}/s (first after {first_latency * 1000:.0f} ms, "
        f"first to last {flow_rate:.0f}/s)"
    )
    print(f"bridge RSS after the storm: {rss_kib / 1024:.1f} MiB")
    print()
    print(
        harness.verdict(
            "committed and answered < 1 s",
            answer_seconds < GOAL_ANSWER_SECONDS,
            f"{answer_seconds:.3f} s",
        )
    )
    print(
        harness.verdict(
            "deliveries >= 1,000/s",
            overall_rate >= GOAL_DELIVERIES_PER_SECOND and received == count,
            f"{overall_rate:.0f}/s, {received} of {count}",
        )
    )
    return 0


if __name__ == "__main__":
    harness.run_main(main)
