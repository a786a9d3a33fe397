"""Tests of the admin API's delivery routes: list the outbox, retry dead letters.

The app runs with its real delivery worker, a temporary SQLite store and one
`ScriptedTarget`, so that a test decides whether a delivery fails for good
or is delivered. Alerts come in through ``POST /alertmanager`` as
Alertmanager sends them.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from bridge.admin import OPENAPI_RESOURCE
from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import PAGERDUTY, SLACK, WEBHOOK, Integration, Source
from bridge.model import Event
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Delivered, Failed, Outcome, Problem, SendContext

with warnings.catch_warnings():
    # Starlette 1.10 warns once, at import, that its test client prefers the
    # httpx2 package over httpx; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ADMIN_TOKEN = "deliveries-admin-token-6c1e0b9f4a27"
ALERTMANAGER_TOKEN = "deliveries-alertmanager-token-3f8d2a61"
SLACK_TOKEN = "xoxb-2222-3333-DeliveriesSlackSecretR5"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ALERTMANAGER = {"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"}

INTEGRATION = Integration(
    id="ops-slack",
    type=SLACK,
    settings={"channel": "#ops"},
    secrets={"token": SLACK_TOKEN},
    source=Source.CONFIG,
)
DISK_LABELS = {
    "alertname": "LowDiskSpace",
    "project": "shop",
    "environment": "main",
    "service": "db",
    "mountpoint": "/var/lib/mysql",
}


class ScriptedTarget:
    """A Slack target whose sends return the outcomes queued in ``outcomes``.

    Once the queue is empty every send is delivered. ``sent`` lists the ids
    of the events sent, failed ones included.
    """

    type = SLACK

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.sent: list[str] = []

    async def send(self, event: Event, context: SendContext) -> Outcome:
        self.sent.append(event.id)
        return self.outcomes.pop(0) if self.outcomes else Delivered()

    async def check(self, context: SendContext) -> list[Problem]:
        return []


class OtherTarget(ScriptedTarget):
    """Stands in for the types that these tests never send to."""

    def __init__(self, integration_type: str) -> None:
        super().__init__()
        self.type = integration_type


@pytest.fixture
def target() -> ScriptedTarget:
    return ScriptedTarget()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "bridge.db")
    yield opened
    opened.close()


@pytest.fixture
def client(
    tmp_path: Path, store: SQLiteStore, target: ScriptedTarget
) -> Iterator[TestClient]:
    settings = Settings(
        db=str(tmp_path / "bridge.db"),
        bridge_token=ALERTMANAGER_TOKEN,
        admin_token=ADMIN_TOKEN,
        integrations=(INTEGRATION,),
        delivery_poll_seconds=0.05,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.05,
    )
    targets = {
        SLACK: target,
        PAGERDUTY: OtherTarget(PAGERDUTY),
        WEBHOOK: OtherTarget(WEBHOOK),
    }
    app = create_app(settings, store=store, targets=targets)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def send_alert(client: TestClient, severity: str, mountpoint: str) -> None:
    """Post one firing alert for a disk, as Alertmanager's webhook sends it."""
    message = {
        "version": "4",
        "status": "firing",
        "receiver": "bridge",
        "groupKey": "{}:{}",
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    **DISK_LABELS,
                    "mountpoint": mountpoint,
                    "severity": severity,
                },
                "annotations": {"free_percent": "14.2"},
                "startsAt": "2026-12-04T10:00:00.123456789Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "0123456789abcdef",
            }
        ],
    }
    response = client.post("/alertmanager", json=message, headers=ALERTMANAGER)
    assert response.status_code == 200, response.text


def deliveries(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/deliveries", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["deliveries"]
    return rows


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def dead_letters(client: TestClient) -> list[dict[str, Any]]:
    return deliveries(client, status="dead")


def make_dead_letter(
    client: TestClient, target: ScriptedTarget, reason: str
) -> dict[str, Any]:
    target.outcomes.append(Failed(reason))
    send_alert(client, "warning", "/var/lib/mysql")
    rows = wait_until(lambda: dead_letters(client), "a dead letter")
    assert len(rows) == 1
    dead: dict[str, Any] = rows[0]
    return dead


# Listing ---------------------------------------------------------------------


def test_list_without_deliveries_is_empty(client: TestClient) -> None:
    assert deliveries(client) == []


def test_list_shows_dead_letter_with_reason(
    client: TestClient, target: ScriptedTarget
) -> None:
    dead = make_dead_letter(
        client, target, "Slack could not post to the channel: channel_not_found"
    )

    assert dead["status"] == "dead"
    assert dead["attempts"] == 1
    assert dead["last_error"] == (
        "Slack could not post to the channel: channel_not_found"
    )
    assert dead["integration_id"] == "ops-slack"
    assert dead["integration_type"] == SLACK
    assert dead["event_id"] == target.sent[0]
    assert dead["event_type"] == "warning"
    assert dead["level"] == "warning"
    assert dead["disk"]["labels"] == {
        "project": "shop",
        "environment": "main",
        "service": "db",
        "mountpoint": "/var/lib/mysql",
    }
    assert len(dead["disk"]["id"]) == 32
    assert dead["delivered_at"] is None
    assert dead["created_at"] <= dead["next_attempt_at"]


def test_list_status_filters(client: TestClient, target: ScriptedTarget) -> None:
    make_dead_letter(client, target, "final failure")
    send_alert(client, "warning", "/srv")
    wait_until(lambda: deliveries(client, status="delivered"), "a delivered row")

    every = deliveries(client)
    dead = deliveries(client, status="dead")
    delivered = deliveries(client, status="delivered")

    assert [row["status"] for row in every] == ["delivered", "dead"]
    assert [row["status"] for row in dead] == ["dead"]
    assert [row["status"] for row in delivered] == ["delivered"]
    assert delivered[0]["last_error"] is None
    assert delivered[0]["delivered_at"] is not None
    assert deliveries(client, status="pending") == []


def test_list_limit_keeps_newest(client: TestClient, target: ScriptedTarget) -> None:
    for mountpoint in ("/a", "/b", "/c"):
        send_alert(client, "warning", mountpoint)
    wait_until(lambda: len(deliveries(client, status="delivered")) == 3, "3 rows")

    rows = deliveries(client, limit="2")

    assert [row["disk"]["labels"]["mountpoint"] for row in rows] == ["/c", "/b"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "failed"}, "status must be one of pending, delivered, dead"),
        ({"status": ""}, "status must be one of"),
        ({"limit": "0"}, "limit must be a whole number from 1 to 1000, not '0'"),
        ({"limit": "1001"}, "limit must be a whole number from 1 to 1000"),
        ({"limit": "-1"}, "limit must be a whole number"),
        ({"limit": "ten"}, "limit must be a whole number"),
        ({"limit": "9" * 5000}, "limit must be a whole number"),
        # Unicode digits pass str.isdigit but are no decimal number here.
        ({"limit": "\u0661\u0662"}, "limit must be a whole number"),
    ],
)
def test_list_bad_parameter_is_400(
    client: TestClient, params: dict[str, str], message: str
) -> None:
    response = client.get("/api/v1/deliveries", params=params, headers=ADMIN)

    assert response.status_code == 400
    assert message in response.json()["error"]


def test_list_redacts_secret_in_reason(
    client: TestClient, target: ScriptedTarget
) -> None:
    # A target whose error text quotes the token must not leak it here.
    make_dead_letter(client, target, f"Slack said {SLACK_TOKEN} is revoked")

    response = client.get("/api/v1/deliveries", headers=ADMIN)

    assert SLACK_TOKEN not in response.text
    assert response.json()["deliveries"][0]["last_error"] == "Slack said *** is revoked"


# Retry -----------------------------------------------------------------------


def test_retry_delivers_dead_letter(client: TestClient, target: ScriptedTarget) -> None:
    dead = make_dead_letter(client, target, "final failure")

    response = client.post(f"/api/v1/deliveries/{dead['id']}/retry", headers=ADMIN)

    assert response.status_code == 200, response.text
    retried = response.json()["delivery"]
    assert retried["id"] == dead["id"]
    assert retried["status"] == "pending"
    assert retried["event_id"] == dead["event_id"]
    assert retried["next_attempt_at"] >= dead["next_attempt_at"]
    delivered = wait_until(
        lambda: deliveries(client, status="delivered"), "the retried delivery"
    )
    assert [row["id"] for row in delivered] == [dead["id"]]
    assert delivered[0]["attempts"] == 2
    assert delivered[0]["last_error"] is None
    assert target.sent == [dead["event_id"], dead["event_id"]]
    assert dead_letters(client) == []


def test_retry_failing_again_is_dead_again(
    client: TestClient, target: ScriptedTarget
) -> None:
    dead = make_dead_letter(client, target, "first failure")
    target.outcomes.append(Failed("second failure"))

    response = client.post(f"/api/v1/deliveries/{dead['id']}/retry", headers=ADMIN)

    assert response.status_code == 200
    again = wait_until(
        lambda: [row for row in dead_letters(client) if row["attempts"] == 2],
        "the second dead letter",
    )
    assert again[0]["last_error"] == "second failure"


@pytest.mark.parametrize(
    "delivery_id",
    [
        "999",
        "abc",
        "-1",
        "1.0",
        # Unicode digits pass str.isdigit; int() would read them as 12.
        "\u0661\u0662",
        # Larger than any SQLite integer.
        str(2**63),
        "1" * 40,
        # More digits than int() parses by default.
        "9" * 5000,
        "0",
    ],
)
def test_retry_unknown_id_is_404(client: TestClient, delivery_id: str) -> None:
    response = client.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=ADMIN)

    assert response.status_code == 404
    assert response.json()["error"] == (
        f"no dead letter has the id {json.dumps(delivery_id)}; list the dead "
        "letters with GET /api/v1/deliveries?status=dead"
    )


def test_retry_delivered_row_is_404(client: TestClient) -> None:
    send_alert(client, "warning", "/srv")
    delivered = wait_until(lambda: deliveries(client, status="delivered"), "a row")

    response = client.post(
        f"/api/v1/deliveries/{delivered[0]['id']}/retry", headers=ADMIN
    )

    assert response.status_code == 404
    assert deliveries(client, status="delivered") == delivered


def test_retry_after_later_delivery_is_409(
    client: TestClient, target: ScriptedTarget
) -> None:
    dead = make_dead_letter(client, target, "final failure")
    send_alert(client, "critical", "/var/lib/mysql")
    wait_until(lambda: deliveries(client, status="delivered"), "the critical")

    response = client.post(f"/api/v1/deliveries/{dead['id']}/retry", headers=ADMIN)

    assert response.status_code == 409
    assert "would arrive out of order" in response.json()["error"]
    assert [row["id"] for row in dead_letters(client)] == [dead["id"]]


# Access ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/v1/deliveries"), ("POST", "/api/v1/deliveries/1/retry")],
)
@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-admin-token"}, 403),
        # The Alertmanager credential never opens the admin API.
        (ALERTMANAGER, 403),
    ],
)
def test_delivery_routes_need_admin_token(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    response = client.request(method, path, headers=headers)

    assert response.status_code == status
    assert ADMIN_TOKEN not in response.text


def test_replayed_retry_with_other_credential_changes_nothing(
    client: TestClient, target: ScriptedTarget
) -> None:
    dead = make_dead_letter(client, target, "final failure")
    path = f"/api/v1/deliveries/{dead['id']}/retry"

    # The same request as an admin would send it, each time with another
    # credential in place of the admin token.
    replays = [
        client.post(path, headers=ALERTMANAGER),
        client.post(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"}),
        client.post(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN[:-1]}"}),
        client.post(path, auth=("admin", ADMIN_TOKEN)),
    ]

    assert [response.status_code for response in replays] == [403, 403, 403, 401]
    assert dead_letters(client) == [dead]
    assert target.sent == [dead["event_id"]]


# The published document -------------------------------------------------------


def openapi_document() -> dict[str, Any]:
    raw = resources.files("bridge").joinpath("schemas", OPENAPI_RESOURCE)
    document: dict[str, Any] = json.loads(raw.read_bytes())
    return document


def schema_problems(
    value: Any, schema: dict[str, Any], document: dict[str, Any], path: str = "$"
) -> list[str]:
    """Check ``value`` against the keywords the Delivery schema uses."""
    if "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        return schema_problems(value, node, document, path)

    names = schema.get("type")
    if names is not None:
        kinds = {
            "object": dict,
            "array": list,
            "string": str,
            "integer": int,
            "boolean": bool,
            "null": type(None),
        }
        allowed = names if isinstance(names, list) else [names]
        if not any(
            isinstance(value, kinds[name])
            and not (name == "integer" and isinstance(value, bool))
            for name in allowed
        ):
            return [f"{path}: {value!r} is not {names}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        problems += [
            f"{path}: missing {name}"
            for name in schema.get("required", ())
            if name not in value
        ]
        for name, item in value.items():
            extra = schema.get("additionalProperties", True)
            if name in properties:
                problems += schema_problems(
                    item, properties[name], document, f"{path}.{name}"
                )
            elif extra is False:
                problems.append(f"{path}: {name} is not documented")
            elif isinstance(extra, dict):
                problems += schema_problems(item, extra, document, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += schema_problems(
                item, schema["items"], document, f"{path}[{index}]"
            )
    return problems


def response_schema(document: dict[str, Any], path: str, method: str) -> Any:
    operation = document["paths"][path][method]
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


def test_responses_match_openapi_document(
    client: TestClient, target: ScriptedTarget
) -> None:
    document = openapi_document()
    dead = make_dead_letter(client, target, "final failure")

    listed = client.get("/api/v1/deliveries", headers=ADMIN).json()
    retried = client.post(
        f"/api/v1/deliveries/{dead['id']}/retry", headers=ADMIN
    ).json()
    wait_until(lambda: deliveries(client, status="delivered"), "the retried row")
    delivered = client.get("/api/v1/deliveries", headers=ADMIN).json()

    list_schema = response_schema(document, "/deliveries", "get")
    retry_schema = response_schema(document, "/deliveries/{id}/retry", "post")
    assert schema_problems(listed, list_schema, document) == []
    assert schema_problems(retried, retry_schema, document) == []
    assert schema_problems(delivered, list_schema, document) == []
    # The checker itself must catch a field that the document lacks.
    assert schema_problems(
        {**dead, "extra": 1}, document["components"]["schemas"]["Delivery"], document
    ) == ["$: extra is not documented"]
