"""An Alertmanager HA pair, as real processes, in front of a real bridge.

Both Alertmanagers run without gossip, so each sends every notification, as
a pair does when its members cannot reach each other. Alerts are posted to
them through their API, the way Prometheus sends them.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require_binary
from e2e.processes import Process, free_port, wait_for
from fakes.fixtures import WEBHOOK_SHARED_KEY
from fakes.webhook_receiver import WebhookReceiver

BRIDGE = Path(sys.executable).parent / "webpaas-bridge"
TOKEN = "ha-test-bridge-token-61f0c2d9"
ADMIN = "ha-test-admin-token-3b8e17aa"
LABELS = {
    "alertname": "LowDiskSpace",
    "severity": "warning",
    "service": "db",
    "mountpoint": "/data",
}


@dataclass
class Pair:
    """The two Alertmanagers' URLs, the bridge's URL and the receiver."""

    alertmanagers: list[str]
    bridge: str
    receiver: WebhookReceiver


def alertmanager_config(bridge_url: str, token_file: Path) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "bridge",
            "group_by": ["alertname", "service", "mountpoint"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "bridge",
                "webhook_configs": [
                    {
                        "url": f"{bridge_url}/alertmanager",
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(token_file),
                            }
                        },
                    }
                ],
            }
        ],
    }


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    alertmanager = require_binary("prometheus-alertmanager")
    bridge_port = free_port()
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    token_file = tmp_path / "bridge-token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)

    with WebhookReceiver(shared_key=WEBHOOK_SHARED_KEY) as receiver:
        bridge_config = tmp_path / "bridge.yml"
        bridge_config.write_text(
            yaml.safe_dump(
                {
                    "allow_private_targets": True,
                    "delivery": {"poll_seconds": 0.1},
                    "integrations": [
                        {
                            "id": "hook",
                            "type": "health.webhook",
                            "url": f"{receiver.url}/hook",
                            "shared_key": WEBHOOK_SHARED_KEY,
                        }
                    ],
                }
            )
        )
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "WEBPAAS_CONFIG": str(bridge_config),
            "WEBPAAS_DB": str(tmp_path / "bridge.db"),
            "WEBPAAS_LISTEN": f"127.0.0.1:{bridge_port}",
            "WEBPAAS_BRIDGE_TOKEN": TOKEN,
            "WEBPAAS_ADMIN_TOKEN": ADMIN,
        }
        processes = [
            Process(
                "bridge",
                [str(BRIDGE)],
                tmp_path / "bridge.log",
                f"{bridge_url}/readyz",
                environment,
            )
        ]
        config = tmp_path / "alertmanager.yml"
        config.write_text(yaml.safe_dump(alertmanager_config(bridge_url, token_file)))
        urls = []
        for index in range(2):
            port = free_port()
            urls.append(f"http://127.0.0.1:{port}")
            processes.append(
                Process(
                    f"alertmanager-{index}",
                    [
                        alertmanager,
                        f"--config.file={config}",
                        f"--storage.path={tmp_path / f'am-{index}'}",
                        f"--web.listen-address=127.0.0.1:{port}",
                        # Empty: no gossip, so both members notify.
                        "--cluster.listen-address=",
                    ],
                    tmp_path / f"alertmanager-{index}.log",
                    f"{urls[-1]}/-/ready",
                )
            )
        try:
            for process in processes:
                process.start()
            yield Pair(urls, bridge_url, receiver)
        finally:
            for process in reversed(processes):
                process.stop()


def post_alert(
    alertmanager_url: str, starts_at: datetime, ends_at: datetime | None = None
) -> None:
    alert: dict[str, Any] = {
        "labels": LABELS,
        "annotations": {"free_percent": "15.00"},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
    }
    if ends_at is not None:
        alert["endsAt"] = ends_at.isoformat().replace("+00:00", "Z")
    request = urllib.request.Request(
        f"{alertmanager_url}/api/v2/alerts",
        data=json.dumps([alert]).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


def accepted_messages(bridge_url: str) -> float:
    with urllib.request.urlopen(f"{bridge_url}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('webpaas_bridge_messages_received_total{code="200"}'):
            return float(line.split()[-1])
    return 0.0


def event_types(receiver: WebhookReceiver) -> list[str]:
    return [event["type"] for event in receiver.events]


def test_ha_pair_notifies_once(pair: Pair) -> None:
    started = datetime.now(UTC) - timedelta(minutes=5)
    for url in pair.alertmanagers:
        post_alert(url, started)
    wait_for(lambda: accepted_messages(pair.bridge) >= 2, 15, "both firing messages")

    for url in pair.alertmanagers:
        post_alert(url, started, ends_at=datetime.now(UTC))
    wait_for(lambda: accepted_messages(pair.bridge) >= 4, 15, "both resolves")
    wait_for(lambda: len(pair.receiver.events) >= 2, 10, "the all-clear")
    time.sleep(0.5)

    assert event_types(pair.receiver) == ["warning", "all_clear"]
    assert pair.receiver.rejected == []


def test_ha_pair_with_merged_starts_at_clears(pair: Pair) -> None:
    first_seen = datetime.now(UTC) - timedelta(minutes=1)
    earlier = first_seen - timedelta(minutes=4)
    member, peer = pair.alertmanagers

    # One member first hears of the alert with a later startsAt and notifies.
    post_alert(member, first_seen)
    wait_for(lambda: len(pair.receiver.events) >= 1, 15, "the warning")
    # Then it hears the earlier startsAt, which Alertmanager keeps, and so
    # does its peer, which notifies with the earlier one.
    post_alert(member, earlier)
    post_alert(peer, earlier)
    wait_for(lambda: accepted_messages(pair.bridge) >= 2, 15, "the peer's firing")

    # Both resolves carry the earlier startsAt.
    for url in pair.alertmanagers:
        post_alert(url, earlier, ends_at=datetime.now(UTC))
    wait_for(lambda: len(pair.receiver.events) >= 2, 15, "the all-clear")
    time.sleep(0.5)

    assert event_types(pair.receiver) == ["warning", "all_clear"]
