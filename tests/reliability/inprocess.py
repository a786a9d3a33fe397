"""The bridge app in this process, with its real targets, worker and store.

`bridge_app` builds the app the way ``webpaas-bridge`` does (real Slack,
PagerDuty and webhook targets, the delivery worker, a SQLite store) but
serves it through Starlette's TestClient, so a test can post an
Alertmanager message and watch the outbox without starting a process.
Deliveries still go over real sockets to servers on 127.0.0.1.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.exceptions import StarletteDeprecationWarning

from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import Integration
from bridge.store.base import PENDING, Delivery
from bridge.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    # Starlette 1.10 warns at import that its test client prefers the httpx2
    # package; the pinned httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

BRIDGE_TOKEN = "reliability-bridge-token-3f8e1a"
ADMIN_TOKEN = "reliability-admin-token-7c2d9b"
BEARER = {"Authorization": f"Bearer {BRIDGE_TOKEN}"}


def firing_message(disk: str = "d1", severity: str = "warning") -> dict[str, Any]:
    """Return a webhook message with one firing LowDiskSpace alert."""
    return {
        "version": "4",
        "status": "firing",
        "receiver": "bridge",
        "groupKey": "{}:{}",
        "externalURL": "http://alertmanager.invalid",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LowDiskSpace",
                    "severity": severity,
                    "project": "shop",
                    "service": disk,
                    "mountpoint": "/data",
                },
                "annotations": {"free_percent": "12.5"},
                "startsAt": "2026-12-04T10:00:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }


@dataclass
class BridgeApp:
    client: TestClient
    store: SQLiteStore
    settings: Settings

    def post(self, message: dict[str, Any]) -> int:
        response = self.client.post("/alertmanager", json=message, headers=BEARER)
        return response.status_code

    def settled(self, timeout: float = 20.0) -> list[Delivery]:
        """Wait until no delivery is pending; return all, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            deliveries = self.store.list_deliveries(limit=10_000)
            if deliveries and all(d.status != PENDING for d in deliveries):
                return sorted(deliveries, key=lambda delivery: delivery.id)
            assert time.monotonic() < deadline, (
                f"deliveries still pending after {timeout:g} s: {deliveries}"
            )
            time.sleep(0.02)

    def attempts_at_least(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(d.attempts >= count for d in self.store.list_deliveries()):
            assert time.monotonic() < deadline, f"fewer than {count} attempts"
            time.sleep(0.02)


@contextmanager
def bridge_app(
    directory: Path, integrations: list[Integration], **changes: Any
) -> Iterator[BridgeApp]:
    """Run the app with ``integrations`` in a fresh store until the block ends."""
    values: dict[str, Any] = {
        "db": str(directory / "bridge.db"),
        "bridge_token": BRIDGE_TOKEN,
        "admin_token": ADMIN_TOKEN,
        "allow_private_targets": True,
        "delivery_poll_seconds": 0.02,
        **changes,
    }
    settings = Settings(**values)
    store = SQLiteStore(settings.db)
    for integration in integrations:
        store.create_integration(integration)
    app = create_app(settings, store=store)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            yield BridgeApp(client, store, settings)
    finally:
        store.close()
