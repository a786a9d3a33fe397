"""SSRF guard at the two places a webhook URL is used: the admin API and a send.

Name resolution is a fake resolver and every HTTP exchange goes through
`httpx.MockTransport`, so no packet goes to any checked address. The
guard's parser is tested case by case in tests/bridge/targets. Here each
hostile URL must be rejected end to end. A create through the admin API
gets 422 and stores nothing, and a delivery to it fails without one
request leaving the bridge.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import WEBHOOK, Integration
from bridge.model import DiskKey, Event, EventType, Level
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Delivered, Failed, SendContext
from bridge.targets.registry import build_targets
from bridge.targets.webhook import WebhookTarget

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ADMIN_TOKEN = "ssrf-admin-token-2b4d6f8h0j"
# What the fake resolver returns: public names, and names that point inside.
ANSWERS = {
    "hooks.example.com": ["93.184.215.14"],
    "rebound.example.com": ["10.0.0.7"],
    "metadata.example.net": ["169.254.169.254"],
    "v6-loopback.example.net": ["::1"],
    "mixed.example.net": ["93.184.215.14", "127.0.0.1"],
}
HOSTILE_URLS = [
    "http://localhost/hook",
    "http://127.0.0.1/hook",
    "http://127.1/hook",  # inet_aton short form
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433/hook",  # decimal 127.0.0.1
    "http://3232235777/hook",  # decimal 192.168.1.1
    "http://0177.0.0.1/hook",  # octal
    "http://0x7f.0.0.1/hook",  # hexadecimal
    "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    "http://[::ffff:a9fe:a9fe]/hook",  # mapped 169.254.169.254, hex form
    "http://rebound.example.com/hook",  # a name that resolves to 10/8
    "http://metadata.example.net/hook",
    "http://v6-loopback.example.net/hook",
    "http://mixed.example.net/hook",  # one of two answers is loopback
]


async def fake_resolver(host: str, port: int) -> list[str]:
    try:
        return ANSWERS[host]
    except KeyError:
        raise OSError(f"no address for {host}") from None


def warning_event() -> Event:
    return Event(
        id="ssrf-event-1",
        type=EventType.WARNING,
        disk=DiskKey.from_alert_labels({"service": "db", "mountpoint": "/data"}),
        level=Level.WARNING,
        previous_level=Level.OK,
        occurred_at=datetime.now(UTC),
        free_percent="12.0",
    )


def send(url: str, handler: httpx.MockTransport) -> object:
    target = WebhookTarget(allow_private_targets=False, resolver=fake_resolver)
    integration = Integration(id="hook", type=WEBHOOK, settings={"url": url})

    async def attempt() -> object:
        async with httpx.AsyncClient(transport=handler) as client:
            context = SendContext(integration=integration, client=client)
            return await target.send(warning_event(), context)

    return asyncio.run(attempt())


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_send_to_internal_url_fails_without_request(url: str) -> None:
    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    outcome = send(url, httpx.MockTransport(record))

    assert isinstance(outcome, Failed), outcome
    assert outcome.reason.startswith("url: ")
    assert "webhooks may only target public addresses" in outcome.reason or (
        "loopback name" in outcome.reason
    )
    assert requests == []


def test_public_url_redirecting_inside_is_not_followed() -> None:
    requests: list[httpx.Request] = []

    def redirect(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(
            302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
        )

    outcome = send("http://hooks.example.com/hook", httpx.MockTransport(redirect))

    assert isinstance(outcome, Failed)
    assert "redirect" in outcome.reason
    assert "169.254" not in outcome.reason
    # One request, to the checked public address, and none to the Location.
    assert [str(request.url.host) for request in requests] == ["93.184.215.14"]
    assert requests[0].headers["host"] == "hooks.example.com"


def test_public_url_delivers() -> None:
    def accept(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200)

    outcome = send("http://hooks.example.com/hook", httpx.MockTransport(accept))

    assert outcome == Delivered()


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    directory: Path = tmp_path_factory.mktemp("ssrf")
    store = SQLiteStore(directory / "bridge.db")
    targets = build_targets(
        "http://127.0.0.1:9/api",
        "http://127.0.0.1:9/v2/enqueue",
        False,
        resolver=fake_resolver,
    )
    app = create_app(
        Settings(db=str(directory / "bridge.db"), admin_token=ADMIN_TOKEN),
        store=store,
        targets=targets,
    )
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        with TestClient(app, base_url="http://127.0.0.1", headers=headers) as client:
            yield client
    finally:
        store.close()


@pytest.mark.parametrize("url", [url for url in HOSTILE_URLS if "example." not in url])
def test_admin_create_internal_url_rejected(admin: TestClient, url: str) -> None:
    response = admin.post(
        "/api/v1/integrations",
        json={"type": WEBHOOK, "url": url},
        params={"check": "false"},
    )

    assert response.status_code == 422, response.text
    assert [problem["field"] for problem in response.json()["problems"]] == ["url"]
    assert admin.get("/api/v1/integrations").json()["integrations"] == []
