"""Property tests over the whole HTTP surface: methods, paths and credentials.

The body fuzzing of the admin API lives in tests/bridge/admin; this module
varies what comes before the body. Any method on any path with any
``Authorization`` header gets a clear answer below 500, and nothing but the
exact admin token ever reads the admin API.
"""

from __future__ import annotations

import base64
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    # Starlette 1.10 warns at import that its test client prefers the httpx2
    # package; the pinned httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

EXAMPLES = int(os.environ.get("WEBPAAS_FUZZ_EXAMPLES", "200"))
BRIDGE_TOKEN = "fuzz-http-bridge-token-5e4d3c2b"
ADMIN_TOKEN = "fuzz-http-admin-token-9a8b7c6d"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
PATHS = (
    "/alertmanager",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/v1/openapi.json",
    "/api/v1/integrations",
    "/api/v1/integrations/validate",
    "/api/v1/integrations/hook",
    "/api/v1/integrations/hook/validate",
    "/api/v1/deliveries",
    "/api/v1/deliveries/1/retry",
    "/api/v1/",
    "/nowhere",
)
# httpx sends header values as ASCII.
PRINTABLE = st.characters(min_codepoint=32, max_codepoint=126)
authorizations = st.one_of(
    st.none(),
    st.just(f"Bearer {BRIDGE_TOKEN}"),
    st.just(f"Bearer {ADMIN_TOKEN}"),
    # The admin token with one character changed, cut short, or extended.
    st.integers(0, len(ADMIN_TOKEN) - 1).map(
        lambda i: f"Bearer {ADMIN_TOKEN[:i]}X{ADMIN_TOKEN[i + 1 :]}"
    ),
    st.just(f"Bearer {ADMIN_TOKEN[:-1]}"),
    st.just(f"Bearer {ADMIN_TOKEN}0"),
    st.just(f"bearer  {ADMIN_TOKEN} "),
    st.just("Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()),
    st.text(alphabet=PRINTABLE, max_size=40).map(lambda text: f"Bearer {text}"),
    st.text(alphabet=PRINTABLE, max_size=60),
)


class PassingTarget:
    """A target whose live check passes, so no request leaves this process."""

    async def check(self, context: SendContext) -> list[Problem]:
        return []


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    directory: Path = tmp_path_factory.mktemp("fuzz-http")
    store = SQLiteStore(directory / "bridge.db")
    app = create_app(
        Settings(
            db=str(directory / "bridge.db"),
            bridge_token=BRIDGE_TOKEN,
            admin_token=ADMIN_TOKEN,
            allow_private_targets=True,
        ),
        store=store,
        targets={integration_type: PassingTarget() for integration_type in TYPES},
    )
    try:
        with TestClient(app, base_url="http://127.0.0.1") as test_client:
            yield test_client
    finally:
        store.close()


def exact_admin(authorization: str | None) -> bool:
    if authorization is None:
        return False
    scheme, _, credentials = authorization.strip().partition(" ")
    return scheme.lower() == "bearer" and credentials.strip() == ADMIN_TOKEN


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"]),
    path=st.sampled_from(PATHS),
    authorization=authorizations,
    body=st.none() | st.binary(max_size=80),
)
def test_any_request_is_answered_below_500(
    client: TestClient,
    method: str,
    path: str,
    authorization: str | None,
    body: bytes | None,
) -> None:
    headers: dict[str, Any] = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = client.request(method, path, headers=headers, content=body)

    assert response.status_code < 500, (response.status_code, response.text[:300])
    if path.startswith("/api/v1") and not exact_admin(authorization):
        assert response.status_code in (401, 403, 404, 405), response.text[:300]
        assert ADMIN_TOKEN not in response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        # A line break in an id: the router matches no route.
        ("GET", "/api/v1/integrations/a%0Ab", 404, "Not Found"),
        ("GET", "/nowhere", 404, "Not Found"),
        ("DELETE", "/healthz", 405, "Method Not Allowed"),
    ],
)
def test_router_errors_are_json(
    client: TestClient, method: str, path: str, status: int, error: str
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    response = client.request(method, path, headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": error}
