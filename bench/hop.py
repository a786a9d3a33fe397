"""Hop latency: the time the bridge adds between Alertmanager and a receiver.

One real Alertmanager (``prometheus-alertmanager``, on 127.0.0.1, gossip
off) routes every alert to two receivers at once: a webhook straight to the
local receiver of bench/receiver.py (``/direct``) and the bridge, whose
webhook integration sends to the same receiver (``/hook``). Both
notifications of an alert leave Alertmanager when the same ``group_wait``
ends, so the difference between their arrival times at the receiver is the
latency the bridge adds (parse, state machine, durable commit, delivery
worker, webhook send); ``group_wait`` cancels out. Each alert is its own
group (``group_by: [service]``) and takes a new disk from ok to warning.

Run: ``.venv/bin/python bench/hop.py`` (``--smoke`` for 5 alerts).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
import yaml

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
GOAL_ADDED_P50_MS = 5.0


def alertmanager_config(
    receiver: harness.Receiver, bridge: harness.Bridge, group_wait: str
) -> dict[str, Any]:
    timing = {
        "group_by": ["service"],
        "group_wait": group_wait,
        "group_interval": "5m",
        "repeat_interval": "4h",
    }
    return {
        "route": {
            "receiver": "direct",
            **timing,
            "routes": [
                {"receiver": "direct", "continue": True},
                {"receiver": "bridge"},
            ],
        },
        "receivers": [
            {
                "name": "direct",
                "webhook_configs": [
                    {"url": f"{receiver.url}/direct", "send_resolved": False}
                ],
            },
            {
                "name": "bridge",
                "webhook_configs": [
                    {
                        "url": f"{bridge.url}/alertmanager",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(bridge.token_file),
                            }
                        },
                    }
                ],
            },
        ],
    }


def post_alert(alertmanager_url: str, index: int) -> None:
    labels = harness.disk_labels(index, prefix="hop")
    sent = harness.alert(labels)
    status, answer = harness.post_json(
        f"{alertmanager_url}/api/v2/alerts",
        [
            {
                "labels": sent["labels"],
                "annotations": sent["annotations"],
                "startsAt": datetime.now(UTC).isoformat(),
                "generatorURL": sent["generatorURL"],
            }
        ],
    )
    if status != 200:
        raise RuntimeError(f"Alertmanager responded {status}: {answer}")


def arrivals(
    records: list[dict[str, Any]],
) -> tuple[dict[str, float], dict[str, float]]:
    """Return arrival times by service: straight from Alertmanager, via the bridge."""
    direct: dict[str, float] = {}
    bridged: dict[str, float] = {}
    for record in records:
        body = json.loads(record["body"])
        if record["path"] == "/direct":
            for alert in body["alerts"]:
                direct.setdefault(alert["labels"]["service"], record["time"])
        elif record["path"] == "/hook":
            bridged.setdefault(body["disk"]["service"], record["time"])
    return direct, bridged


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--alerts", type=int, default=100, help="alerts to send")
    parser.add_argument(
        "--interval", type=float, default=0.1, help="seconds between alerts"
    )
    parser.add_argument("--group-wait", default="100ms", help="Alertmanager group_wait")
    harness.add_workdir_option(parser)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.alerts = 5
    return arguments


def main() -> int:
    arguments = parse_arguments()
    harness.print_header("hop latency", [sys.executable, *sys.argv])
    workdir = Path(tempfile.mkdtemp(prefix="webpaas-bench-hop-", dir=arguments.workdir))
    try:
        with (
            harness.Receiver(workdir) as receiver,
            harness.Bridge(workdir, f"{receiver.url}/hook") as bridge,
        ):
            port = harness.free_port()
            config = workdir / "alertmanager.yml"
            config.write_text(
                yaml.safe_dump(
                    alertmanager_config(receiver, bridge, arguments.group_wait)
                )
            )
            alertmanager = harness.Server(
                "alertmanager",
                [
                    ALERTMANAGER,
                    f"--config.file={config}",
                    f"--storage.path={workdir / 'alertmanager-data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    # Empty: no gossip listener, which would bind every interface.
                    "--cluster.listen-address=",
                ],
                f"http://127.0.0.1:{port}/-/ready",
                workdir / "alertmanager.log",
            )
            with alertmanager:
                url = f"http://127.0.0.1:{port}"
                posted: dict[str, float] = {}
                for index in range(arguments.alerts):
                    posted[f"hop-{index}"] = time.time()
                    post_alert(url, index)
                    time.sleep(arguments.interval)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    direct, bridged = arrivals(receiver.records())
                    if (
                        len(direct) >= arguments.alerts
                        and len(bridged) >= arguments.alerts
                    ):
                        break
                    time.sleep(0.2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    paired = sorted(set(direct) & set(bridged))
    if not paired:
        print("error: no alert reached the receiver both ways")
        return 1
    added_ms = [(bridged[s] - direct[s]) * 1000 for s in paired]
    direct_ms = [(direct[s] - posted[s]) * 1000 for s in paired]
    bridged_ms = [(bridged[s] - posted[s]) * 1000 for s in paired]
    print(
        f"alerts: {arguments.alerts} sent, {len(paired)} arrived both ways; "
        f"group_wait {arguments.group_wait}"
    )
    print(f"{'path':<34} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in (
        ("post -> receiver, direct", direct_ms),
        ("post -> receiver, via the bridge", bridged_ms),
        ("added by the bridge", added_ms),
    ):
        print(
            f"{name:<34} {harness.median(values):>8.2f} "
            f"{harness.percentile(values, 0.90):>8.2f} "
            f"{harness.percentile(values, 0.99):>8.2f} {max(values):>8.2f}"
        )
    print()
    added_p50 = harness.median(added_ms)
    print(
        harness.verdict(
            "added latency p50 < 5 ms",
            added_p50 < GOAL_ADDED_P50_MS and len(paired) == arguments.alerts,
            f"{added_p50:.2f} ms",
        )
    )
    return 0


if __name__ == "__main__":
    harness.run_main(main)
