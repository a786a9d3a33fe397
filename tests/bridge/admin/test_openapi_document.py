"""Tests that the admin API's OpenAPI document matches the routes and docs/."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Route

from bridge.admin import OPENAPI_RESOURCE, admin_routes
from bridge.app import create_app
from bridge.config import Settings

with warnings.catch_warnings():
    # Starlette 1.10 warns once, at import, that its test client prefers the
    # httpx2 package over httpx; the client works the same with either.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

REPO = Path(__file__).resolve().parents[3]
DOCS_COPY = REPO / "docs" / "admin-api.openapi.json"
ADMIN_TOKEN = "openapi-test-admin-token-5d2c"
HTTP_METHODS = {"get", "post", "patch", "put", "delete"}


def packaged_bytes() -> bytes:
    return resources.files("bridge").joinpath("schemas", OPENAPI_RESOURCE).read_bytes()


@pytest.fixture
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(packaged_bytes())
    return loaded


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        db=str(tmp_path / "bridge.db"),
        bridge_token="openapi-test-alertmanager-token",
        admin_token=ADMIN_TOKEN,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_docs_copy_is_identical() -> None:
    assert DOCS_COPY.read_bytes() == packaged_bytes()


def test_document_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": "/api/v1"}]
    assert document["security"] == [{"adminToken": []}]


def test_document_matches_routes(document: dict[str, Any]) -> None:
    routed = {
        (route.path, method.lower())
        for route in admin_routes()
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }

    assert documented == routed


def test_document_refs_resolve(document: dict[str, Any]) -> None:
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)

    assert refs
    for ref in refs:
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"{ref} does not resolve"
            node = node[part]


def test_every_operation_documents_auth_errors(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            assert "401" in operation["responses"], f"{method} {path}"
            assert "403" in operation["responses"], f"{method} {path}"


def test_served_document_is_the_file(client: TestClient) -> None:
    response = client.get(
        "/api/v1/openapi.json", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == packaged_bytes()


def test_served_document_needs_admin_token(client: TestClient) -> None:
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 401
