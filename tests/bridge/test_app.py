"""Tests of the bridge's HTTP routes through Starlette's TestClient."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
import urllib.parse
import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.app import create_app
from bridge.auth import require_admin
from bridge.config import Settings
from bridge.integrations import Integration, Source
from bridge.model import Event, EventType
from bridge.store.base import PENDING, Committed, Decide, StoreError
from bridge.store.sqlite import SQLiteStore
from bridge.targets import pagerduty, slack, webhook
from bridge.targets.base import Delivered, Outcome, Problem, SendContext
from bridge.text import json_bytes

with warnings.catch_warnings():
    # Starlette 1.10 warns at import that its test client prefers the httpx2
    # package; the pinned httpx works the same for these tests.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

TOKEN = "bridge-token-0123456789"
ADMIN = "admin-token-9876543210"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LABELS = {"alertname": "LowDiskSpace", "project": "shop", "mountpoint": "/data"}


class RecordingTarget:
    type = "health.webhook"

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def send(self, event: Event, context: SendContext) -> Outcome:
        self.events.append(event)
        return Delivered()

    async def check(self, context: SendContext) -> list[Problem]:
        return []


def message(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "bridge",
        "groupKey": "{}:{}",
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def alert(
    severity: str = "warning",
    status: str = "firing",
    starts: str = "2026-03-01T12:00:00.123456789Z",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {**LABELS, "severity": severity, **labels},
        "annotations": {"free_percent": "14.2"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z"
        if status == "firing"
        else "2026-03-01T13:00:00Z",
    }


def settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "bridge_token": TOKEN,
        "admin_token": ADMIN,
        "delivery_poll_seconds": 0.02,
        **changes,
    }
    return Settings(**values)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "bridge.db")
    opened.create_integration(Integration(id="hook", type="health.webhook"))
    yield opened
    opened.close()


@pytest.fixture
def target() -> RecordingTarget:
    return RecordingTarget()


@pytest.fixture
def client(store: SQLiteStore, target: RecordingTarget) -> Iterator[TestClient]:
    app = create_app(settings(), store=store, targets={"health.webhook": target})
    with TestClient(app) as test_client:
        yield test_client


def wait_for(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_ready(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_store_not_writable(store: SQLiteStore) -> None:
    class ReadOnlyStore(SQLiteStore):
        def check_writable(self) -> None:
            raise StoreError("SQLite check_writable failed: disk I/O error")

    broken = ReadOnlyStore(store.path)
    app = create_app(settings(), store=broken, targets={})

    with TestClient(app) as client:
        response = client.get("/readyz")
    broken.close()

    assert response.status_code == 503
    assert response.json() == {
        "status": "not ready",
        "reasons": [
            "store is not writable: SQLite check_writable failed: disk I/O error"
        ],
    }


def test_readyz_without_worker(store: SQLiteStore) -> None:
    app = create_app(settings(), store=store, targets={})
    # Without the context manager the lifespan, and so the worker, never runs.
    client = TestClient(app)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["reasons"] == ["delivery worker is not running"]


def test_app_state_contract(client: TestClient, store: SQLiteStore) -> None:
    state = client.app.state  # type: ignore[attr-defined]

    assert state.store is store
    assert state.settings.bridge_token == TOKEN
    assert state.http_client.is_closed is False


def test_firing_message_delivers_event(
    client: TestClient, target: RecordingTarget
) -> None:
    response = client.post("/alertmanager", json=message(alert()), headers=BEARER)

    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "alerts": 1, "transitions": 1}
    wait_for(lambda: len(target.events) == 1)
    (event,) = target.events
    assert event.type is EventType.WARNING
    assert event.free_percent == "14.2"
    assert event.starts_at == datetime(2026, 3, 1, 12, 0, 0, 123456, UTC)


def test_duplicate_message_no_second_event(
    client: TestClient, store: SQLiteStore, target: RecordingTarget
) -> None:
    body = message(alert())

    first = client.post("/alertmanager", json=body, headers=BEARER)
    second = client.post("/alertmanager", json=body, headers=BEARER)

    assert first.json()["transitions"] == 1
    assert second.json() == {"status": "accepted", "alerts": 1, "transitions": 0}
    assert len(store.list_deliveries()) == 1


def test_message_with_mixed_disks(client: TestClient) -> None:
    body = message(
        alert("critical", mountpoint="/a"),
        alert("warning", "resolved", mountpoint="/b"),
        alert("warning", alertname="DiskSpaceUnknown", mountpoint="/c"),
    )

    response = client.post("/alertmanager", json=body, headers=BEARER)

    assert response.json() == {"status": "accepted", "alerts": 3, "transitions": 1}


@pytest.mark.parametrize(
    ("headers", "status", "body"),
    [
        # No credential at all.
        (
            {},
            401,
            {
                "error": "missing credential: send the bridge token as a bearer "
                "token or basic auth"
            },
        ),
        # Wrong bearer token.
        ({"Authorization": "Bearer wrong"}, 403, {"error": "invalid credential"}),
        # The admin token is not the Alertmanager credential.
        ({"Authorization": f"Bearer {ADMIN}"}, 403, {"error": "invalid credential"}),
        # Basic auth when only a bearer token is configured.
        (
            {
                "Authorization": "Basic "
                + base64.b64encode(b"am:" + TOKEN.encode()).decode()
            },
            403,
            {"error": "invalid credential"},
        ),
        # Right token.
        (BEARER, 200, {"status": "accepted", "alerts": 1, "transitions": 1}),
    ],
)
def test_alertmanager_bearer_auth(
    client: TestClient, headers: dict[str, str], status: int, body: dict[str, Any]
) -> None:
    response = client.post("/alertmanager", json=message(alert()), headers=headers)

    assert response.status_code == status
    assert response.json() == body


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (basic("alertmanager", "s3cret-password"), 200),
        (basic("alertmanager", "wrong"), 403),
        (basic("someone", "s3cret-password"), 403),
        ({"Authorization": "Basic !!notbase64"}, 403),
        ({"Authorization": "Bearer s3cret-password"}, 403),
        ({}, 401),
    ],
)
def test_alertmanager_basic_auth(
    store: SQLiteStore, headers: dict[str, str], status: int
) -> None:
    configured = settings(
        bridge_token=None,
        bridge_username="alertmanager",
        bridge_password="s3cret-password",
    )
    app = create_app(configured, store=store, targets={})

    with TestClient(app) as client:
        response = client.post("/alertmanager", json=message(alert()), headers=headers)

    assert response.status_code == status


def test_insecure_no_auth_accepts(store: SQLiteStore) -> None:
    configured = settings(bridge_token=None, insecure_no_auth=True)
    app = create_app(configured, store=store, targets={})

    with TestClient(app) as client:
        response = client.post("/alertmanager", json=message(alert()))

    assert response.status_code == 200


def test_unauthenticated_has_www_authenticate(client: TestClient) -> None:
    response = client.post("/alertmanager", json=message(alert()))

    assert response.headers["www-authenticate"] == 'Bearer realm="webpaas-bridge"'


def test_wrong_content_type_415(client: TestClient) -> None:
    response = client.post(
        "/alertmanager", content=b"{}", headers={**BEARER, "Content-Type": "text/plain"}
    )

    assert response.status_code == 415
    assert response.json() == {"error": "Content-Type must be application/json"}


def test_invalid_json_400(client: TestClient) -> None:
    response = client.post(
        "/alertmanager",
        content=b"{oops",
        headers={**BEARER, "Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "body is not valid JSON: Expecting property name enclosed in "
        "double quotes at line 1 column 2",
        "field": "",
    }


def test_invalid_alert_422_names_field(client: TestClient) -> None:
    bad = alert()
    bad["startsAt"] = "2026-03-01 noon"

    response = client.post("/alertmanager", json=message(alert(), bad), headers=BEARER)

    assert response.status_code == 422
    assert response.json() == {
        "error": "alerts[1].startsAt: '2026-03-01 noon' is not an RFC 3339 timestamp",
        "field": "alerts[1].startsAt",
    }


def test_body_over_limit_413(store: SQLiteStore) -> None:
    app = create_app(settings(max_request_bytes=1024), store=store, targets={})
    body = json.dumps(message(*[alert(mountpoint=f"/m{i}") for i in range(20)]))
    expected = {
        "error": "body is larger than the limit of 1024 bytes (max_request_bytes)"
    }

    with TestClient(app) as client:
        declared = client.post(
            "/alertmanager",
            content=body.encode(),
            headers={**BEARER, "Content-Type": "application/json"},
        )
        # Chunked, without Content-Length: the limit holds while reading.
        streamed = client.post(
            "/alertmanager",
            content=iter([body[:800].encode(), body[800:].encode()]),
            headers={**BEARER, "Content-Type": "application/json"},
        )

    assert declared.status_code == 413
    assert declared.json() == expected
    assert streamed.status_code == 413
    assert streamed.json() == expected
    assert store.list_deliveries() == []


def test_store_failure_503(store: SQLiteStore) -> None:
    class FullStore(SQLiteStore):
        def apply_transitions(self, disk_ids: Any, decide: Decide) -> Committed:
            raise StoreError(
                "SQLite apply_transitions failed: database or disk is full"
            )

    full = FullStore(store.path)
    app = create_app(settings(), store=full, targets={})

    with TestClient(app) as client:
        response = client.post("/alertmanager", json=message(alert()), headers=BEARER)
    full.close()

    assert response.status_code == 503
    assert response.json() == {
        "error": "the bridge could not commit the message; retry later"
    }


def test_metrics_exposed(client: TestClient, target: RecordingTarget) -> None:
    client.post("/alertmanager", json=message(alert()), headers=BEARER)
    wait_for(lambda: len(target.events) == 1)
    # The target has the event before its outcome is committed.
    wait_for(lambda: "webpaas_bridge_outbox_pending 0.0" in client.get("/metrics").text)

    response = client.get("/metrics")

    assert response.status_code == 200
    text = response.text
    assert 'webpaas_bridge_messages_received_total{code="200"} 1.0' in text
    assert 'webpaas_bridge_alerts_received_total{status="firing"} 1.0' in text
    assert 'webpaas_bridge_transitions_total{level="warning"} 1.0' in text
    assert "webpaas_bridge_outbox_pending 0.0" in text
    assert "webpaas_bridge_delivery_worker_up 1.0" in text
    assert TOKEN not in text


# Every metric the bridge promises, with a sample present before any traffic.
EXPECTED_SAMPLES = [
    'webpaas_bridge_alerts_received_total{status="resolved"} 0.0',
    'webpaas_bridge_transitions_total{level="critical"} 0.0',
    'webpaas_bridge_transitions_total{level="ok"} 0.0',
    'webpaas_bridge_delivery_attempts_total{integration_type="health.slack",'
    'outcome="failed"} 0.0',
    'webpaas_bridge_delivery_attempts_total{integration_type="health.pagerduty",'
    'outcome="expired"} 0.0',
    'webpaas_bridge_delivery_retries_total{integration_type="health.slack"} 0.0',
    'webpaas_bridge_dead_letters_total{integration_type="health.pagerduty"} 0.0',
    "webpaas_bridge_outbox_pending 0.0",
    "webpaas_bridge_outbox_dead 0.0",
    "webpaas_bridge_outbox_oldest_pending_age_seconds 0.0",
    'webpaas_bridge_delivery_duration_seconds_count{integration_type="health.slack"}'
    " 0.0",
    "webpaas_bridge_delivery_worker_up 1.0",
    'webpaas_bridge_store_pruned_rows_total{table="deliveries"} 0.0',
    'webpaas_bridge_store_pruned_rows_total{table="events"} 0.0',
]


def test_metrics_listed_before_traffic(client: TestClient) -> None:
    text = client.get("/metrics").text

    for sample in EXPECTED_SAMPLES:
        assert sample in text


def test_metrics_count_delivery(client: TestClient, target: RecordingTarget) -> None:
    client.post("/alertmanager", json=message(alert()), headers=BEARER)
    wait_for(lambda: len(target.events) == 1)
    text = ""

    def delivered() -> bool:
        nonlocal text
        text = client.get("/metrics").text
        return (
            'webpaas_bridge_delivery_attempts_total{integration_type="health.webhook",'
            'outcome="delivered"} 1.0' in text
        )

    wait_for(delivered)

    assert (
        "webpaas_bridge_delivery_duration_seconds_count{integration_type="
        '"health.webhook"} 1.0' in text
    )
    assert "webpaas_bridge_outbox_pending 0.0" in text


def test_accepted_message_visible_to_other_connection(
    client: TestClient, store: SQLiteStore
) -> None:
    response = client.post("/alertmanager", json=message(alert()), headers=BEARER)

    # A second connection sees only what was committed to the file.
    with sqlite3.connect(store.path) as other:
        disks = other.execute("SELECT level FROM disks").fetchall()
        events = other.execute("SELECT type FROM events").fetchall()
        deliveries = other.execute("SELECT integration_id FROM deliveries").fetchall()
    assert response.status_code == 200
    assert disks == [(1,)]
    assert events == [("warning",)]
    assert deliveries == [("hook",)]


def test_hostile_text_accepted_and_sendable(
    client: TestClient, target: RecordingTarget
) -> None:
    hostile = alert(service='a"b<c>&d_e\n\tf\u00e9\U0001f4a5')
    hostile["annotations"]["summary"] = "x" * 100_000
    raw = json.dumps(message(hostile)).replace("\\u00e9", "\\ud800").encode()
    raw = raw.replace(b"http://alertmanager:9093", b"http://am/\\udfff")

    response = client.post(
        "/alertmanager",
        content=raw,
        headers={**BEARER, "Content-Type": "application/json"},
    )

    assert response.status_code == 200
    wait_for(lambda: len(target.events) == 1)
    (event,) = target.events
    for body in (
        webhook.build_request(event, None, datetime.now(UTC))[0],
        json_bytes(slack.build_message(event, "#alerts", None)),
        json_bytes(pagerduty.build_event(event, "r" * 32)),
    ):
        assert json.loads(body)


def test_config_integrations_synced(store: SQLiteStore) -> None:
    declared = Integration(
        id="cfg",
        type="health.webhook",
        settings={"url": "http://x"},
        source=Source.CONFIG,
    )
    app = create_app(settings(integrations=(declared,)), store=store, targets={})

    with TestClient(app):
        listed = {item.id: item.source for item in store.list_integrations()}

    assert listed == {"cfg": Source.CONFIG, "hook": Source.API}


def test_ten_thousand_alerts_one_commit(
    store: SQLiteStore, target: RecordingTarget
) -> None:
    alerts = [alert(instance=f"host-{index}") for index in range(10_000)]
    body = json.dumps(message(*alerts)).encode()
    app = create_app(settings(), store=store, targets={"health.webhook": target})

    with TestClient(app) as client:
        started = time.monotonic()
        response = client.post(
            "/alertmanager",
            content=body,
            headers={**BEARER, "Content-Type": "application/json"},
        )
        elapsed = time.monotonic() - started

    assert response.status_code == 200
    assert response.json()["transitions"] == 10_000
    assert (
        len(store.list_deliveries(PENDING, limit=20_000)) + len(target.events) >= 10_000
    )
    # The target is under one second on a laptop; the bound leaves room for
    # slow CI machines.
    assert elapsed < 10


RULES = Path(__file__).resolve().parents[2] / "rules"


def realistic_alert(rule: dict[str, Any]) -> dict[str, Any]:
    """Return an alert as Alertmanager sends it for one of the shipped rules."""
    labels = {
        "alertname": rule["alert"],
        **rule["labels"],
        "project": "shop",
        "environment": "production",
        "job": "node",
        "instance": "checkout-worker-00000.shop-production.example.com:9100",
        "service": "checkout-worker",
        "mountpoint": "/var/lib/containers/storage/overlay",
        "device": "/dev/mapper/vg0-containers",
        "fstype": "xfs",
    }
    # Prometheus prints the rule's expression without comments, then
    # Alertmanager forwards the link as generatorURL.
    lines = (line.split("#", 1)[0] for line in rule["expr"].splitlines())
    expression = " ".join(" ".join(lines).split())
    annotations = {
        name: text.replace("{{ $labels.mountpoint }}", labels["mountpoint"])
        for name, text in rule["annotations"].items()
    }
    return {
        "status": "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": "2026-12-04T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "https://prometheus.shop-production.example.com/graph?g0.expr="
        + urllib.parse.quote_plus(expression)
        + "&g0.tab=1",
        "fingerprint": "0123456789abcdef",
    }


@pytest.mark.parametrize(
    "rules_file", ["node-exporter-disk.rules.yml", "webpaas-disk.rules.yml"]
)
def test_default_limit_fits_ten_thousand_alerts(rules_file: str) -> None:
    document = yaml.safe_load((RULES / rules_file).read_text())
    longest = max(
        (realistic_alert(rule) for rule in document["groups"][0]["rules"]),
        key=lambda alert: len(json.dumps(alert)),
    )
    alerts = [longest] * 10_000

    size = len(json.dumps(message(*alerts)).encode())

    assert size < Settings().max_request_bytes


def admin_app() -> Starlette:
    async def protected(request: Request) -> Response:
        require_admin(request)
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/admin", protected)])
    app.state.settings = settings()
    return app


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer nope"}, 403),
        # The Alertmanager credential never passes as admin.
        (BEARER, 403),
        (
            {
                "Authorization": "Basic "
                + base64.b64encode(f"x:{ADMIN}".encode()).decode()
            },
            401,
        ),
        ({"Authorization": f"Bearer {ADMIN}"}, 200),
    ],
)
def test_require_admin(headers: Mapping[str, str], status: int) -> None:
    client = TestClient(admin_app(), raise_server_exceptions=False)

    response = client.get("/admin", headers=dict(headers))

    assert response.status_code == status


def test_require_admin_disabled_without_token() -> None:
    app = admin_app()
    app.state.settings = settings(admin_token=None)
    client = TestClient(app)

    response = client.get("/admin", headers=BEARER)

    assert response.status_code == 403
    assert "admin API is disabled" in response.text


def test_truncated_message_logs_warning(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    body = {**message(alert()), "truncatedAlerts": 7}

    with caplog.at_level("WARNING", logger="bridge.app"):
        response = client.post("/alertmanager", json=body, headers=BEARER)

    assert response.status_code == 200
    assert "truncated_alerts=7" in caplog.text
