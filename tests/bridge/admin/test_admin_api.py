"""Tests of the admin API routes on the real app and a temporary SQLite store.

Live checks go to `StubTarget` objects, so that each test decides what the
live check returns. The tests in ``tests/cli`` run the real targets against
local fake servers in a running bridge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning

from bridge import admin
from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import PAGERDUTY, SLACK, TYPES, WEBHOOK, Integration, Source
from bridge.store.base import StoreError
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Delivered, Problem, SendContext

with warnings.catch_warnings():
    # Starlette 1.10 warns once, at import, that its test client prefers the
    # httpx2 package over httpx; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ADMIN_TOKEN = "admin-token-7f3a9c2e5b1d8a4f6e0c"
ALERTMANAGER_TOKEN = "alertmanager-token-2b8e4d1f9a7c3e5d"
SLACK_TOKEN = "xoxb-1111-2222-SlackSecretTokenQ7"
OTHER_SLACK_TOKEN = "xoxb-3333-4444-OtherSlackSecretZ9"
ROUTING_KEY = "R0utingKeySecretValue0000000PD42"
SHARED_KEY = "c2hhcmVkLWtleS1mb3ItdGVzdHMtMDEyMzQ1Njc4OWFiY2RlZg"
CONFIG_SLACK_TOKEN = "xoxb-5555-6666-ConfigSlackSecretW3"

SECRETS = (
    ADMIN_TOKEN,
    ALERTMANAGER_TOKEN,
    SLACK_TOKEN,
    OTHER_SLACK_TOKEN,
    ROUTING_KEY,
    SHARED_KEY,
    CONFIG_SLACK_TOKEN,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

CONFIG_INTEGRATION = Integration(
    id="ops-config",
    type=SLACK,
    settings={"channel": "#config"},
    secrets={"token": CONFIG_SLACK_TOKEN},
    source=Source.CONFIG,
)

SLACK_BODY = {"type": SLACK, "token": SLACK_TOKEN, "channel": "#ops"}
PAGERDUTY_BODY = {"type": PAGERDUTY, "routing_key": ROUTING_KEY}
WEBHOOK_BODY = {
    "type": WEBHOOK,
    "url": "http://127.0.0.1:9/hook",
    "shared_key": SHARED_KEY,
}

# Every route with a request that reaches it, for the access tests.
ROUTES = [
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/integrations"),
    ("POST", "/api/v1/integrations"),
    ("POST", "/api/v1/integrations/validate"),
    ("GET", "/api/v1/integrations/ops-config"),
    ("PATCH", "/api/v1/integrations/ops-config"),
    ("DELETE", "/api/v1/integrations/ops-config"),
    ("POST", "/api/v1/integrations/ops-config/validate"),
]


class StubTarget:
    """A target whose live check returns what the test set.

    ``problems`` are returned as they are, ``hang`` makes the check sleep
    past any timeout, and ``error`` is raised. ``checked`` lists the ids.
    """

    def __init__(self, integration_type: str) -> None:
        self.type = integration_type
        self.problems: list[Problem] = []
        self.hang = False
        self.error: Exception | None = None
        self.checked: list[str] = []

    async def send(self, event: Any, context: SendContext) -> Delivered:
        return Delivered()

    async def check(self, context: SendContext) -> list[Problem]:
        self.checked.append(context.integration.id)
        if self.hang:
            await asyncio.sleep(3600)
        if self.error is not None:
            raise self.error
        return list(self.problems)


def make_app(
    settings: Settings, store: SQLiteStore, targets: dict[str, StubTarget]
) -> Starlette:
    return create_app(settings, store=store, targets=targets)


@pytest.fixture
def targets() -> dict[str, StubTarget]:
    return {
        integration_type: StubTarget(integration_type) for integration_type in TYPES
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "bridge.db")
    yield opened
    opened.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        db=str(tmp_path / "bridge.db"),
        bridge_token=ALERTMANAGER_TOKEN,
        admin_token=ADMIN_TOKEN,
        allow_private_targets=True,
        integrations=(CONFIG_INTEGRATION,),
    )


@pytest.fixture
def client(
    settings: Settings, store: SQLiteStore, targets: dict[str, StubTarget]
) -> Iterator[TestClient]:
    app = make_app(settings, store, targets)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient) -> TestClient:
    """The test client with the admin token on every request."""
    client.headers.update(ADMIN)
    return client


def create(api: TestClient, body: dict[str, Any], **params: str) -> dict[str, Any]:
    response = api.post("/api/v1/integrations", json=body, params=params)
    assert response.status_code == 201, response.text
    return response.json()


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# Access ---------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_route_without_credential_is_401(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json={})

    assert response.status_code == 401
    assert "error" in response.json()
    assert response.headers["www-authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer wrong-admin-token",
        # The Alertmanager credential must never open the admin API.
        f"Bearer {ALERTMANAGER_TOKEN}",
        # An admin token that differs only in its last character.
        f"Bearer {ADMIN_TOKEN[:-1]}x",
    ],
)
def test_route_with_wrong_credential_is_403(
    client: TestClient, method: str, path: str, authorization: str
) -> None:
    response = client.request(
        method, path, json={}, headers={"Authorization": authorization}
    )

    assert response.status_code == 403
    assert_no_secret(response.text)


def test_admin_token_as_basic_auth_is_rejected(client: TestClient) -> None:
    response = client.get("/api/v1/integrations", auth=("admin", ADMIN_TOKEN))

    assert response.status_code == 401


def test_rejected_request_changes_nothing(
    client: TestClient, store: SQLiteStore
) -> None:
    response = client.post(
        "/api/v1/integrations",
        json=SLACK_BODY,
        headers={"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"},
    )

    assert response.status_code == 403
    assert [item.id for item in store.list_integrations()] == ["ops-config"]


# Create ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "secret_field"),
    [
        (SLACK_BODY, "token"),
        (PAGERDUTY_BODY, "routing_key"),
        (WEBHOOK_BODY, "shared_key"),
    ],
)
def test_create_stores_and_hides_secret(
    api: TestClient,
    store: SQLiteStore,
    body: dict[str, str],
    secret_field: str,
) -> None:
    response = api.post("/api/v1/integrations", json=body)

    assert response.status_code == 201
    answer = response.json()
    view = answer["integration"]
    assert answer["validation"] == {"valid": True, "live": True, "problems": []}
    assert view["type"] == body["type"]
    assert view["source"] == "api"
    assert view["read_only"] is False
    assert view[secret_field] == {"set": True, "last4": body[secret_field][-4:]}
    assert len(view["id"]) == 12
    assert response.headers["location"] == f"/api/v1/integrations/{view['id']}"
    assert store.get_integration(view["id"]).secrets[secret_field] == body[secret_field]
    assert_no_secret(response.text)


def test_create_runs_live_check(
    api: TestClient, targets: dict[str, StubTarget]
) -> None:
    created = create(api, SLACK_BODY)

    assert targets[SLACK].checked == [created["integration"]["id"]]


def test_create_with_check_false_skips_live_check(
    api: TestClient, targets: dict[str, StubTarget]
) -> None:
    created = create(api, SLACK_BODY, check="false")

    assert created["validation"] == {"valid": True, "live": False, "problems": []}
    assert targets[SLACK].checked == []


def test_create_with_bad_check_parameter_is_400(
    api: TestClient, store: SQLiteStore
) -> None:
    response = api.post(
        "/api/v1/integrations", json=SLACK_BODY, params={"check": "maybe"}
    )

    assert response.status_code == 400
    assert "check must be true or false" in response.json()["error"]
    assert [item.id for item in store.list_integrations()] == ["ops-config"]


def test_create_failing_live_check_is_stored_and_reported(
    api: TestClient, store: SQLiteStore, targets: dict[str, StubTarget]
) -> None:
    # A target that quotes the secret must still not leak it.
    targets[SLACK].problems = [
        Problem("token", f"Slack rejected the token {SLACK_TOKEN}: invalid_auth")
    ]

    created = create(api, SLACK_BODY)

    assert created["validation"] == {
        "valid": False,
        "live": True,
        "problems": [
            {"field": "token", "reason": "Slack rejected the token ***: invalid_auth"}
        ],
    }
    assert store.get_integration(created["integration"]["id"]).type == SLACK


def test_create_invalid_format_is_422_and_not_stored(
    api: TestClient, store: SQLiteStore, targets: dict[str, StubTarget]
) -> None:
    body = {"type": SLACK, "token": "not-a-slack-token-secret", "channel": "#Ops Room"}

    response = api.post("/api/v1/integrations", json=body)

    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "integration is invalid; nothing was stored"
    assert [problem["field"] for problem in answer["problems"]] == ["token", "channel"]
    assert "not-a-slack-token-secret" not in response.text
    assert targets[SLACK].checked == []
    assert [item.id for item in store.list_integrations()] == ["ops-config"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # no type at all
        ({"token": SLACK_TOKEN}, [("type", "is required")]),
        ({"type": "health.email"}, [("type", "is not a known type")]),
        ({"type": SLACK, "channel": "#ops"}, [("token", "is required")]),
        (
            {"type": SLACK, "token": 42, "channel": "#ops"},
            [("token", "must be a string")],
        ),
        (
            {"type": SLACK, "token": SLACK_TOKEN, "channel": ["#ops"]},
            [("channel", "must be a string")],
        ),
        (
            {**SLACK_BODY, "url": "http://127.0.0.1/"},
            [("url", "is not a field of health.slack")],
        ),
        ({**SLACK_BODY, "id": "mine"}, [("id", "is set by the bridge")]),
        ({**SLACK_BODY, "channel": "  "}, [("channel", "must not be empty")]),
        (
            {**SLACK_BODY, "channel": "#" + "a" * 3000},
            [("channel", "is longer than 2048")],
        ),
        # null is only for removing a field in an update
        ({**WEBHOOK_BODY, "shared_key": None}, [("shared_key", "must be a string")]),
    ],
)
def test_create_wrong_fields_are_422(
    api: TestClient, body: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    response = api.post("/api/v1/integrations", json=body)

    assert response.status_code == 422
    problems = response.json()["problems"]
    assert [problem["field"] for problem in problems] == [
        field for field, _ in expected
    ]
    for problem, (_, reason) in zip(problems, expected, strict=True):
        assert reason in problem["reason"]
    assert_no_secret(response.text)


def test_create_private_webhook_url_rejected_by_default(
    settings: Settings, store: SQLiteStore, targets: dict[str, StubTarget]
) -> None:
    strict = Settings(**{**settings.__dict__, "allow_private_targets": False})
    app = make_app(strict, store, targets)

    with TestClient(app, base_url="http://127.0.0.1", headers=ADMIN) as strict_api:
        response = strict_api.post(
            "/api/v1/integrations",
            json={"type": WEBHOOK, "url": "http://169.254.169.254/latest/meta-data"},
        )

    assert response.status_code == 422
    assert response.json()["problems"][0]["field"] == "url"


def test_create_short_shared_key_names_the_fix(api: TestClient) -> None:
    response = api.post(
        "/api/v1/integrations",
        json={**WEBHOOK_BODY, "shared_key": "c2hvcnQta2V5"},
    )

    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["field"] == "shared_key"
    assert "webpaas key:generate" in problem["reason"]


# Malformed requests ---------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"", 400, "request body is empty"),
        (b"{", 400, "request body is not valid JSON"),
        (b'{"type": "health.slack", "type": "health.webhook"}', 400, "duplicate key"),
        (b"[" * 5000 + b"]" * 5000, 400, "nested too deeply"),
        (b'{"type": "\xff\xfe"}', 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON array; send a JSON object"),
        (b'"health.slack"', 422, "JSON string; send a JSON object"),
        (b"null", 422, "JSON null; send a JSON object"),
        (b"x" * (admin.MAX_BODY_BYTES + 1), 413, "larger than 65536 bytes"),
    ],
)
def test_create_malformed_body_is_4xx(
    api: TestClient, content: bytes, status: int, message: str
) -> None:
    response = api.post(
        "/api/v1/integrations",
        content=content,
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == status
    assert message in response.json()["error"]


def test_create_without_json_content_type_is_415(api: TestClient) -> None:
    response = api.post(
        "/api/v1/integrations",
        content=json.dumps(SLACK_BODY),
        headers={"Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_route_with_wrong_method_is_405(api: TestClient) -> None:
    response = api.put("/api/v1/integrations/ops-config", json={})

    assert response.status_code == 405


# List and show --------------------------------------------------------------


def test_list_shows_config_and_api_integrations(api: TestClient) -> None:
    created = create(api, PAGERDUTY_BODY)["integration"]

    response = api.get("/api/v1/integrations")

    assert response.status_code == 200
    by_id = {item["id"]: item for item in response.json()["integrations"]}
    assert set(by_id) == {"ops-config", created["id"]}
    assert by_id["ops-config"]["source"] == "config"
    assert by_id["ops-config"]["read_only"] is True
    assert by_id["ops-config"]["token"] == {
        "set": True,
        "last4": CONFIG_SLACK_TOKEN[-4:],
    }
    assert by_id[created["id"]]["routing_key"] == {"set": True, "last4": "PD42"}
    assert_no_secret(response.text)


def test_show_returns_public_view(api: TestClient) -> None:
    created = create(api, WEBHOOK_BODY)["integration"]

    response = api.get(f"/api/v1/integrations/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_show_unknown_id_is_404_naming_it(api: TestClient) -> None:
    response = api.get("/api/v1/integrations/0badc0ffee00")

    assert response.status_code == 404
    assert '"0badc0ffee00" not found' in response.json()["error"]


# Update ---------------------------------------------------------------------


def test_update_changes_only_given_fields(api: TestClient, store: SQLiteStore) -> None:
    created = create(api, SLACK_BODY)["integration"]

    response = api.patch(
        f"/api/v1/integrations/{created['id']}", json={"channel": "#ops-disks"}
    )

    assert response.status_code == 200
    view = response.json()["integration"]
    assert view["channel"] == "#ops-disks"
    assert view["token"] == created["token"]
    assert view["created_at"] == created["created_at"]
    stored = store.get_integration(created["id"])
    assert stored.secrets == {"token": SLACK_TOKEN}
    assert stored.settings == {"channel": "#ops-disks"}


def test_update_replaces_secret(api: TestClient, store: SQLiteStore) -> None:
    created = create(api, SLACK_BODY)["integration"]

    response = api.patch(
        f"/api/v1/integrations/{created['id']}", json={"token": OTHER_SLACK_TOKEN}
    )

    assert response.status_code == 200
    assert response.json()["integration"]["token"]["last4"] == OTHER_SLACK_TOKEN[-4:]
    assert store.get_integration(created["id"]).secrets["token"] == OTHER_SLACK_TOKEN
    assert_no_secret(response.text)


def test_update_null_removes_optional_shared_key(
    api: TestClient, store: SQLiteStore
) -> None:
    created = create(api, WEBHOOK_BODY)["integration"]

    response = api.patch(
        f"/api/v1/integrations/{created['id']}", json={"shared_key": None}
    )

    assert response.status_code == 200
    assert response.json()["integration"]["shared_key"] == {"set": False}
    assert store.get_integration(created["id"]).secrets == {}


def test_update_reports_live_check(
    api: TestClient, targets: dict[str, StubTarget]
) -> None:
    created = create(api, PAGERDUTY_BODY)["integration"]
    targets[PAGERDUTY].problems = [Problem("routing_key", "PagerDuty answered 400")]

    response = api.patch(
        f"/api/v1/integrations/{created['id']}",
        json={"routing_key": ROUTING_KEY[::-1]},
    )

    assert response.status_code == 200
    assert response.json()["validation"]["valid"] is False
    assert targets[PAGERDUTY].checked == [created["id"], created["id"]]


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({}, "body", "names no field to change"),
        ({"type": WEBHOOK}, "type", "cannot change"),
        ({"token": None}, "token", "is required and cannot be removed"),
        ({"routing_key": ROUTING_KEY}, "routing_key", "is not a field of health.slack"),
        ({"token": {"set": True}}, "token", "secrets are write-only"),
        ({"token": "xoxq-not-slack-secret"}, "token", "must be a Slack bot token"),
    ],
)
def test_update_invalid_is_422_and_keeps_stored(
    api: TestClient, store: SQLiteStore, body: dict[str, Any], field: str, reason: str
) -> None:
    created = create(api, SLACK_BODY)["integration"]

    response = api.patch(f"/api/v1/integrations/{created['id']}", json=body)

    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["field"] == field
    assert reason in problem["reason"]
    assert store.get_integration(created["id"]).secrets == {"token": SLACK_TOKEN}
    assert "xoxq-not-slack-secret" not in response.text


def test_update_unknown_id_is_404(api: TestClient) -> None:
    response = api.patch("/api/v1/integrations/nope", json={"channel": "#x"})

    assert response.status_code == 404
    assert '"nope"' in response.json()["error"]


def test_update_config_integration_is_409(api: TestClient, store: SQLiteStore) -> None:
    response = api.patch("/api/v1/integrations/ops-config", json={"channel": "#x"})

    assert response.status_code == 409
    assert "read-only" in response.json()["error"]
    assert store.get_integration("ops-config").settings == {"channel": "#config"}


# Delete ---------------------------------------------------------------------


def test_delete_removes_integration(api: TestClient) -> None:
    created = create(api, SLACK_BODY)["integration"]

    response = api.delete(f"/api/v1/integrations/{created['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert api.get(f"/api/v1/integrations/{created['id']}").status_code == 404


def test_delete_unknown_id_is_404(api: TestClient) -> None:
    response = api.delete("/api/v1/integrations/nope")

    assert response.status_code == 404


def test_delete_config_integration_is_409(api: TestClient, store: SQLiteStore) -> None:
    response = api.delete("/api/v1/integrations/ops-config")

    assert response.status_code == 409
    assert "change it in the config file" in response.json()["error"]
    assert store.get_integration("ops-config").source is Source.CONFIG


# Validate -------------------------------------------------------------------


def test_validate_one_valid(api: TestClient, targets: dict[str, StubTarget]) -> None:
    created = create(api, SLACK_BODY, check="false")["integration"]

    response = api.post(f"/api/v1/integrations/{created['id']}/validate")

    assert response.status_code == 200
    assert response.json() == {
        "id": created["id"],
        "type": SLACK,
        "valid": True,
        "live": True,
        "stage": "live",
        "problems": [],
    }
    assert targets[SLACK].checked == [created["id"]]


def test_validate_one_live_failure(
    api: TestClient, targets: dict[str, StubTarget]
) -> None:
    created = create(api, SLACK_BODY, check="false")["integration"]
    targets[SLACK].problems = [
        Problem("token", "Slack rejected the token: invalid_auth")
    ]

    response = api.post(f"/api/v1/integrations/{created['id']}/validate")

    assert response.status_code == 200
    answer = response.json()
    assert answer["valid"] is False
    assert answer["problems"] == [
        {"field": "token", "reason": "Slack rejected the token: invalid_auth"}
    ]


def test_validate_config_integration_is_allowed(api: TestClient) -> None:
    response = api.post("/api/v1/integrations/ops-config/validate")

    assert response.status_code == 200
    assert response.json()["valid"] is True


def test_validate_unknown_id_is_404(api: TestClient) -> None:
    response = api.post("/api/v1/integrations/nope/validate")

    assert response.status_code == 404


def test_validate_live_timeout_is_a_problem(
    api: TestClient, targets: dict[str, StubTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    created = create(api, WEBHOOK_BODY, check="false")["integration"]
    targets[WEBHOOK].hang = True
    monkeypatch.setattr(admin, "LIVE_CHECK_TIMEOUT_SECONDS", 0.2)

    response = api.post(f"/api/v1/integrations/{created['id']}/validate")

    assert response.status_code == 200
    assert response.json()["problems"] == [
        {"field": "integration", "reason": "the live check timed out after 0.2 s"}
    ]


def test_validate_live_check_crash_is_a_problem(
    api: TestClient,
    targets: dict[str, StubTarget],
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = create(api, WEBHOOK_BODY, check="false")["integration"]
    targets[WEBHOOK].error = RuntimeError(f"bug while signing with {SHARED_KEY}")

    with caplog.at_level(logging.INFO, logger="bridge"):
        response = api.post(f"/api/v1/integrations/{created['id']}/validate")

    assert response.status_code == 200
    assert response.json()["problems"] == [
        {
            "field": "integration",
            "reason": "the live check failed with RuntimeError; see the bridge log",
        }
    ]
    assert "RuntimeError" in caplog.text
    assert_no_secret(caplog.text)
    assert_no_secret(response.text)


def test_validate_all_reports_each(
    api: TestClient, targets: dict[str, StubTarget]
) -> None:
    slack = create(api, SLACK_BODY, check="false")["integration"]
    pagerduty = create(api, PAGERDUTY_BODY, check="false")["integration"]
    targets[PAGERDUTY].problems = [Problem("routing_key", "PagerDuty answered 400")]

    response = api.post("/api/v1/integrations/validate")

    assert response.status_code == 200
    answer = response.json()
    assert answer["valid"] is False
    by_id = {result["id"]: result for result in answer["results"]}
    assert set(by_id) == {"ops-config", slack["id"], pagerduty["id"]}
    assert by_id[slack["id"]]["valid"] is True
    assert by_id[pagerduty["id"]]["problems"] == [
        {"field": "routing_key", "reason": "PagerDuty answered 400"}
    ]


def test_validate_all_valid(api: TestClient) -> None:
    response = api.post("/api/v1/integrations/validate")

    assert response.status_code == 200
    assert response.json()["valid"] is True


def test_validate_stored_invalid_skips_live_check(
    api: TestClient, store: SQLiteStore, targets: dict[str, StubTarget]
) -> None:
    # A config file can declare what the API would reject.
    store.create_integration(
        Integration(
            id="bad-format",
            type=PAGERDUTY,
            secrets={"routing_key": "short"},
            source=Source.API,
        )
    )

    response = api.post("/api/v1/integrations/bad-format/validate")

    answer = response.json()
    assert answer["valid"] is False
    assert answer["stage"] == "format"
    assert answer["live"] is False
    assert answer["problems"][0]["field"] == "routing_key"
    assert targets[PAGERDUTY].checked == []


# Store failures and secrecy -------------------------------------------------


def test_store_failure_is_503_and_logged(
    api: TestClient,
    store: SQLiteStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def fail(*args: object) -> None:
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "create_integration", fail)

    with caplog.at_level(logging.INFO, logger="bridge"):
        response = api.post("/api/v1/integrations", json=SLACK_BODY)

    assert response.status_code == 503
    assert response.json() == {
        "error": "the bridge could not read or write its store; see its log"
    }
    assert "database or disk is full" in caplog.text
    assert_no_secret(caplog.text)


def test_full_cycle_leaks_no_secret(
    api: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    texts: list[str] = []

    with caplog.at_level(logging.DEBUG):
        for body in (SLACK_BODY, PAGERDUTY_BODY, WEBHOOK_BODY):
            response = api.post("/api/v1/integrations", json=body)
            texts.append(response.text)
            integration_id = response.json()["integration"]["id"]
            secret_field = next(
                name for name in body if name not in ("type", "url", "channel")
            )
            texts.append(api.get("/api/v1/integrations").text)
            texts.append(api.get(f"/api/v1/integrations/{integration_id}").text)
            texts.append(
                api.post(f"/api/v1/integrations/{integration_id}/validate").text
            )
            texts.append(
                api.patch(
                    f"/api/v1/integrations/{integration_id}",
                    json={secret_field: body[secret_field]},
                ).text
            )
            texts.append(api.delete(f"/api/v1/integrations/{integration_id}").text)
        texts.append(api.post("/api/v1/integrations/validate").text)
        texts.append(api.get("/metrics").text)

    for text in texts:
        assert_no_secret(text)
    assert_no_secret(caplog.text)
