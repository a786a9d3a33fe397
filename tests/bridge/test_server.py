"""Tests of the ``webpaas-bridge`` command as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import sys
import urllib.request
from pathlib import Path

import pytest
from e2e.processes import Process, free_port, http_status

from bridge.server import main

BRIDGE = Path(sys.executable).parent / "webpaas-bridge"
TOKEN = "server-test-bridge-token-5d1e8a"
ADMIN = "server-test-admin-token-07c3b9"


def post_message(url: str) -> int:
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "LowDiskSpace",
            "severity": "warning",
            "service": "db",
            "mountpoint": "/data",
        },
        "annotations": {"free_percent": "12.00"},
        "startsAt": "2026-12-04T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }
    request = urllib.request.Request(
        f"{url}/alertmanager",
        data=json.dumps({"version": "4", "alerts": [alert]}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {TOKEN}",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def test_environment_alone_starts_bridge(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    database = tmp_path / "state" / "bridge.db"
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "WEBPAAS_DB": str(database),
        "WEBPAAS_LISTEN": f"127.0.0.1:{port}",
        "WEBPAAS_BRIDGE_TOKEN": TOKEN,
        "WEBPAAS_ADMIN_TOKEN": ADMIN,
        "WEBPAAS_SLACK_API_URL": "http://127.0.0.1:9/api",
        "WEBPAAS_PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9/v2/enqueue",
        "WEBPAAS_ALLOW_PRIVATE_TARGETS": "1",
    }
    bridge = Process(
        "bridge", [str(BRIDGE)], tmp_path / "bridge.log", f"{url}/readyz", environment
    )

    bridge.start()
    try:
        status = post_message(url)
        healthy = http_status(f"{url}/healthz")
    finally:
        bridge.stop(signal.SIGTERM)
    log = bridge.log_path.read_text()

    assert status == 200
    assert healthy == 200
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert "level=INFO logger=bridge.app message received" in log
    assert "transition event_id=" in log
    assert "delivery worker stopped" in log
    # The objects of the start-up are frozen, out of the collector's reach.
    frozen = re.search(r"frozen_objects=(\d+)", log)
    assert frozen is not None
    assert int(frozen.group(1)) > 10_000
    assert TOKEN not in log
    assert ADMIN not in log


def test_config_file_from_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEBPAAS_CONFIG", "/nonexistent/bridge.yml")

    status = main([])

    assert status == 2
    assert "cannot read the config file '/nonexistent/bridge.yml'" in (
        capsys.readouterr().err
    )


def test_invalid_config_integration_stops_start(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    short_key = "c2hvcnQta2V5LTE2Ynl0ZQ"  # 16 bytes, too short for HS256
    config = tmp_path / "bridge.yml"
    config.write_text(
        "integrations:\n"
        "  - id: ticketing\n"
        "    type: health.webhook\n"
        "    url: http://192.0.2.10/hook\n"
        f"    shared_key: {short_key}\n"
        "  - id: ops\n"
        "    type: health.pagerduty\n"
        "    routing_key: too-short\n"
    )
    monkeypatch.setenv("WEBPAAS_BRIDGE_TOKEN", TOKEN)
    monkeypatch.setenv("WEBPAAS_ADMIN_TOKEN", ADMIN)

    status = main(["--config", str(config), "--db", str(tmp_path / "bridge.db")])

    error = capsys.readouterr().err
    assert status == 2
    assert "integration 'ticketing': shared_key: decodes to 16 bytes" in error
    assert "integration 'ops': routing_key: must be 32 characters, got 9" in error
    assert short_key not in error
    assert "too-short" not in error
    assert not (tmp_path / "bridge.db").exists()
