"""Hostile requests against the real ``webpaas-bridge`` process and uvicorn.

The named cases go through uvicorn's HTTP parser and the bridge's routes
end to end, and each must get its exact status. The slowloris test holds
many connections open that send their headers a byte at a time and checks
that ordinary requests are still answered promptly.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.processes import wait_for
from fakes.webhook_receiver import WebhookReceiver

from reliability.inprocess import firing_message
from reliability.running import BRIDGE_TOKEN, SHARED_KEY, RunningBridge, bridge_process

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
LIMIT_BYTES = 40 * MIB
SLOW_CONNECTIONS = int(os.environ.get("WEBPAAS_SLOWLORIS_CONNECTIONS", "300"))
SLOW_SECONDS = float(os.environ.get("WEBPAAS_SLOWLORIS_SECONDS", "4"))
SOFT_OPEN_FILES = 256
# An ordinary request must be answered within this many seconds while the
# slow connections are open; unloaded it takes about 0.002 s.
PROMPT_SECONDS = 1.0


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(shared_key=SHARED_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def bridge(
    tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver
) -> Iterator[RunningBridge]:
    directory: Path = tmp_path_factory.mktemp("hostile")
    running = bridge_process(
        directory,
        directory / "bridge.db",
        receiver.url,
        WEBPAAS_MAX_REQUEST_BYTES=str(LIMIT_BYTES),
    )
    # A soft limit on open files below the number of slow connections, as
    # systemd's 1024 is below a few thousand: the bridge must raise it.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    running.process.command = [
        "prlimit",
        f"--nofile={SOFT_OPEN_FILES}:{hard}",
        *running.process.command,
    ]
    running.process.start()
    try:
        yield running
    finally:
        running.process.stop()


def alerts_message(count: int, disks: int) -> dict[str, Any]:
    message = firing_message()
    template = message["alerts"][0]
    message["alerts"] = [
        {
            **template,
            "labels": {**template["labels"], "service": f"bulk-{index % disks}"},
            "startsAt": f"2026-12-04T10:{index // disks % 60:02d}:00.000000001Z",
        }
        for index in range(count)
    ]
    return message


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def with_alert(**changes: Any) -> bytes:
    """Return a message whose alert has ``changes``; ``...`` removes a key."""
    message = firing_message("named")
    alert = message["alerts"][0]
    for key, value in changes.items():
        if value is ...:
            del alert[key]
        else:
            alert[key] = value
    return body(message)


MALFORMED = b'{"alerts": [{"status": "firing",'
NESTED = b"[" * 200_000 + b"]" * 200_000
DUPLICATED = b'{"alerts": [], "receiver": "a", "receiver": "b"}'


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (MALFORMED, "application/json", 400, "body is not valid JSON"),
        (body(firing_message()), "text/plain", 415, "Content-Type must be"),
        (body(firing_message()), "", 415, "Content-Type must be"),
        (NESTED, "application/json", 400, "nested too deeply"),
        (b'{"alerts": "\xc3\x28"}', "application/json", 400, "not valid UTF-8"),
        (DUPLICATED, "application/json", 400, "duplicate key 'receiver'"),
        (b"{}", "application/json", 422, "alerts: is missing"),
        (with_alert(labels=...), "application/json", 422, "labels: is missing"),
        (with_alert(startsAt=...), "application/json", 422, "startsAt: is missing"),
        (body({"alerts": "all"}), "application/json", 422, "alerts: must be a list"),
        (with_alert(status=1), "application/json", 422, "status: is 1"),
        (
            with_alert(labels={"severity": ["warning"]}),
            "application/json",
            422,
            "labels.severity: must be a string",
        ),
        (
            with_alert(startsAt=1733306400),
            "application/json",
            422,
            "must be an RFC 3339 string",
        ),
        (
            with_alert(startsAt="2026-12-04T10:00:00.1234567890Z"),
            "application/json",
            422,
            "is not an RFC 3339 timestamp",
        ),
    ],
    ids=[
        "malformed-json",
        "text-plain",
        "no-content-type",
        "nested-200000",
        "invalid-utf8",
        "duplicated-key",
        "missing-alerts",
        "missing-labels",
        "missing-startsAt",
        "alerts-not-list",
        "status-number",
        "label-list",
        "startsAt-number",
        "ten-fraction-digits",
    ],
)
def test_named_case_rejected(
    bridge: RunningBridge, content: bytes, content_type: str, status: int, error: str
) -> None:
    response = bridge.post(content, **{"Content-Type": content_type})

    assert response.status_code == status, response.text[:300]
    assert error in response.json()["error"]


def test_nine_digits_and_offset_accepted(
    bridge: RunningBridge, receiver: WebhookReceiver
) -> None:
    message = firing_message("time-zones")
    message["alerts"][0]["startsAt"] = "2026-12-04T12:30:00.123456789+02:00"

    response = bridge.post(message)

    assert response.status_code == 200
    wait_for(
        lambda: [
            e for e in receiver.events if e["disk"].get("service") == "time-zones"
        ],
        10,
        "the time-zones notification",
    )
    (event,) = [e for e in receiver.events if e["disk"].get("service") == "time-zones"]
    assert event["starts_at"] == "2026-12-04T10:30:00.123456Z"


def test_one_mib_label_value_accepted(
    bridge: RunningBridge, receiver: WebhookReceiver
) -> None:
    message = firing_message("big-label")
    message["alerts"][0]["labels"]["note"] = "x" * MIB

    response = bridge.post(message)

    assert response.status_code == 200
    assert response.json()["transitions"] == 1
    wait_for(
        lambda: any(e["disk"].get("service") == "big-label" for e in receiver.events),
        20,
        "the big-label notification",
    )


def test_hundred_thousand_alerts_accepted(bridge: RunningBridge) -> None:
    message = alerts_message(100_000, disks=50)

    started = time.monotonic()
    response = bridge.post(message)
    elapsed = time.monotonic() - started

    assert response.status_code == 200, response.text[:300]
    assert response.json() == {
        "status": "accepted",
        "alerts": 100_000,
        "transitions": 50,
    }
    assert elapsed < 60


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_body_over_limit_413(bridge: RunningBridge, declared: bool) -> None:
    oversized = b" " * (LIMIT_BYTES + 1)
    content: bytes | Iterator[bytes] = oversized
    if not declared:
        content = iter([oversized[i : i + MIB] for i in range(0, len(oversized), MIB)])

    response = httpx.post(
        f"{bridge.url}/alertmanager",
        content=content,
        headers={
            "Authorization": f"Bearer {BRIDGE_TOKEN}",
            "Content-Type": "application/json",
        },
        timeout=30,
    )

    assert response.status_code == 413
    assert response.json() == {
        "error": f"body is larger than the limit of {LIMIT_BYTES} bytes "
        "(max_request_bytes)"
    }


def open_slow_connections(port: int, count: int) -> list[socket.socket]:
    connections = []
    for _ in range(count):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        connection.sendall(b"POST /alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        connections.append(connection)
    return connections


def test_slowloris_does_not_starve_requests(bridge: RunningBridge) -> None:
    port = int(bridge.url.rsplit(":", 1)[1])
    latencies: list[float] = []
    connections = open_slow_connections(port, SLOW_CONNECTIONS)
    try:
        deadline = time.monotonic() + SLOW_SECONDS
        while time.monotonic() < deadline:
            for connection in connections:
                # One more byte of a header line that never ends.
                connection.sendall(b"X")
            started = time.monotonic()
            answer = bridge.post(firing_message("during-slowloris"))
            latencies.append(time.monotonic() - started)
            assert answer.status_code == 200
            time.sleep(0.5)
        still_open = sum(1 for c in connections if _open(c))
    finally:
        for connection in connections:
            connection.close()

    print(
        f"slowloris: {SLOW_CONNECTIONS} slow connections for {SLOW_SECONDS:g} s, "
        f"{len(latencies)} requests, median {statistics.median(latencies):.4f} s, "
        f"max {max(latencies):.4f} s, still open {still_open}"
    )
    assert SLOW_CONNECTIONS > SOFT_OPEN_FILES
    assert max(latencies) < PROMPT_SECONDS
    assert bridge.get("/healthz").status_code == 200
    assert "Too many open files" not in bridge.log()


def _open(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        connection.setblocking(True)
