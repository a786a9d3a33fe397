"""schemathesis against the admin API's own OpenAPI document.

The document is loaded from where clients get it, ``/api/v1/openapi.json``
(with the admin token), and every operation in it is called with
generated valid and invalid requests. Each response must be below 500 and
match the document: a status code it lists, its content type and its
response schema. Live checks of integrations go to a target stub, so no
request leaves this process.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.exceptions import StarletteDeprecationWarning

from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import TYPES
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Problem, SendContext

with warnings.catch_warnings():
    # schemathesis calls the app through Starlette's test client, which
    # warns at import that it prefers the httpx2 package. Importing it here
    # first keeps that warning out of the strict filter.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    import starlette.testclient  # noqa: F401

EXAMPLES = int(os.environ.get("WEBPAAS_SCHEMATHESIS_EXAMPLES", "25"))
ADMIN_TOKEN = "schemathesis-admin-token-4f3e2d1c"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# Not negative_data_rejection: it counts an unknown query parameter as
# invalid input, and the API ignores unknown parameters on purpose, as most
# HTTP APIs do. Wrong values of known ones are covered by the fuzz tests.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


class PassingTarget:
    async def check(self, context: SendContext) -> list[Problem]:
        return []


def build_app() -> object:
    # The schema is loaded at import, before fixtures exist, so the store
    # gets its own temporary directory.
    directory = Path(tempfile.mkdtemp(prefix="webpaas-schemathesis-"))
    store = SQLiteStore(directory / "bridge.db")
    return create_app(
        Settings(
            db=str(directory / "bridge.db"),
            admin_token=ADMIN_TOKEN,
            allow_private_targets=True,
        ),
        store=store,
        targets={integration_type: PassingTarget() for integration_type in TYPES},
    )


app = build_app()
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app, headers=AUTH)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_admin_api_matches_openapi(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)
