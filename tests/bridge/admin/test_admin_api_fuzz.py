"""Property tests: no request body makes the admin API fail with a 5xx.

Bodies are random bytes, random JSON values and random integrations with
random field values. Each must get 200, 201 or a clear 4xx with an
``error`` message.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import TYPES
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Problem, SendContext

with warnings.catch_warnings():
    # Starlette 1.10 warns once, at import, that its test client prefers the
    # httpx2 package over httpx; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ADMIN_TOKEN = "fuzz-admin-token-61b0e2d9c7a4"
FIELD_NAMES = ("type", "token", "channel", "routing_key", "url", "shared_key", "id")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "http://127.0.0.1:9/hook",
            "https://[::1/x",
            "http://0x7f.1/",
            "xoxb-",
            "#",
            "C",
            "=" * 43,
        ]
    ),
    json_values,
)
integration_bodies = st.fixed_dictionaries(
    {"type": st.sampled_from(TYPES)},
    optional={name: field_values for name in FIELD_NAMES[1:]},
)


class PassingTarget:
    """A target whose live check always passes, so no test leaves 127.0.0.1."""

    async def check(self, context: SendContext) -> list[Problem]:
        return []


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for all examples of a module: starting one per example is slow."""
    directory = tmp_path_factory.mktemp("fuzz")
    store = SQLiteStore(directory / "bridge.db")
    app = create_app(
        Settings(
            db=str(directory / "bridge.db"),
            admin_token=ADMIN_TOKEN,
            allow_private_targets=True,
        ),
        store=store,
        targets={integration_type: PassingTarget() for integration_type in TYPES},
    )
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        with TestClient(
            app, base_url="http://127.0.0.1", headers=headers
        ) as test_client:
            yield test_client
    finally:
        store.close()


@pytest.fixture(scope="module")
def webhook_id(client: TestClient) -> str:
    created = client.post(
        "/api/v1/integrations",
        json={"type": "health.webhook", "url": "http://127.0.0.1:9/hook"},
        params={"check": "false"},
    )
    integration_id: str = created.json()["integration"]["id"]
    return integration_id


def assert_clear_answer(status: int, body: dict[str, Any]) -> None:
    assert status < 500, body
    if status >= 400:
        assert isinstance(body.get("error"), str)
        assert body["error"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values)
def test_create_any_json_is_4xx_or_201(client: TestClient, body: Any) -> None:
    response = client.post("/api/v1/integrations", json=body)

    assert_clear_answer(response.status_code, response.json())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=integration_bodies)
def test_create_any_integration_is_4xx_or_201(
    client: TestClient, body: dict[str, Any]
) -> None:
    response = client.post("/api/v1/integrations", json=body, params={"check": "false"})

    assert_clear_answer(response.status_code, response.json())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.dictionaries(st.sampled_from(FIELD_NAMES), field_values, max_size=4))
def test_update_any_fields_is_4xx_or_200(
    client: TestClient, webhook_id: str, body: dict[str, Any]
) -> None:
    response = client.patch(
        f"/api/v1/integrations/{webhook_id}", json=body, params={"check": "false"}
    )

    assert_clear_answer(response.status_code, response.json())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.binary(max_size=200) | st.just(b'{"type": NaN, "url": Infinity}'))
def test_create_any_bytes_is_4xx_or_201(client: TestClient, content: bytes) -> None:
    response = client.post(
        "/api/v1/integrations",
        content=content,
        headers={"Content-Type": "application/json"},
    )

    assert_clear_answer(response.status_code, response.json())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status=st.none() | st.text(max_size=12),
    limit=st.none() | st.text(max_size=8) | st.integers().map(str),
)
def test_list_deliveries_any_query_is_400_or_200(
    client: TestClient, status: str | None, limit: str | None
) -> None:
    params = {
        name: value
        for name, value in (("status", status), ("limit", limit))
        if value is not None
    }

    response = client.get("/api/v1/deliveries", params=params)

    assert response.status_code in (200, 400), response.text
    assert_clear_answer(response.status_code, response.json())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(delivery_id=st.text(min_size=1, max_size=20) | st.integers().map(str))
def test_retry_any_id_is_404(client: TestClient, delivery_id: str) -> None:
    # The module's store has no dead letter, so every id is unknown.
    response = client.post(f"/api/v1/deliveries/{quote(delivery_id, safe='')}/retry")

    assert response.status_code == 404, response.text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    # Starlette routes by the decoded path, so "/", a line break and the
    # segments "." and ".." never reach the integration route.
    integration_id=st.text(min_size=1, max_size=40).filter(
        lambda text: not {"/", "\n"} & set(text) and text not in (".", "..")
    )
)
def test_show_any_id_is_404_or_200(client: TestClient, integration_id: str) -> None:
    response = client.get(f"/api/v1/integrations/{quote(integration_id, safe='')}")

    assert response.status_code in (200, 404), response.text
    assert_clear_answer(response.status_code, response.json())
