"""Property tests: no request to ``POST /alertmanager`` gets a 5xx.

Bodies are random bytes, random JSON, and webhook messages whose every
field may take a wrong type or a hostile value. Each request must get 200
or a clear 4xx with an ``error`` message, and the app must keep serving.

CI runs ``WEBPAAS_FUZZ_EXAMPLES`` examples per test (200 by default). The
full run sets it to 3,400 for at least 10,000 cases over the three tests;
docs/reliability.md has the figures.
"""

from __future__ import annotations

import json
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
from bridge.integrations import Integration
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Delivered, Outcome, Problem, SendContext

with warnings.catch_warnings():
    # Starlette 1.10 warns at import that its test client prefers the httpx2
    # package; the pinned httpx works the same here.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

EXAMPLES = int(os.environ.get("WEBPAAS_FUZZ_EXAMPLES", "200"))
TOKEN = "fuzz-alertmanager-token-0d9c8b7a"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ACCEPTED = frozenset({200, 400, 413, 415, 422})

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
hostile_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            "<!channel> & <b>",
            '"}],"x":{"',
            "\u0000\u202e\ufeff",
            "a" * 5000,
            "\ud7ff\U0001f4be",
            "${jndi:ldap://127.0.0.1/x}",
        ]
    ),
)
timestamps = st.one_of(
    st.sampled_from(
        [
            "2026-12-04T10:00:00.123456789Z",  # nine fractional digits
            "2026-12-04T10:00:00Z",
            "2026-12-04T12:00:00.5+02:00",  # an offset
            "2026-12-04T10:00:00.000000001-07:30",
            "0001-01-01T00:00:00Z",  # Go's zero time
            "9999-12-31T23:59:59.999999999Z",
            "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
            "2026-02-30T10:00:00Z",  # no such day
            "2026-12-04T24:00:00Z",
            "2026-12-04",
            "",
        ]
    ),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.text(max_size=30),
    json_scalars,
)
label_maps = st.one_of(
    st.dictionaries(hostile_text, hostile_text, max_size=6).map(
        lambda labels: {"alertname": "LowDiskSpace", "severity": "warning", **labels}
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    json_values,
)
alerts = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "pending", ""]) | json_scalars,
        "labels": label_maps,
        "annotations": label_maps,
        "startsAt": timestamps,
        "endsAt": timestamps,
        "generatorURL": hostile_text | json_scalars,
        "fingerprint": hostile_text | json_scalars,
    },
)
messages = st.fixed_dictionaries(
    {"alerts": st.lists(alerts, max_size=5) | json_values},
    optional={
        "version": st.just("4") | json_scalars,
        "status": st.sampled_from(["firing", "resolved"]) | json_scalars,
        "receiver": hostile_text | json_values,
        "groupKey": hostile_text | json_values,
        "groupLabels": label_maps,
        "commonLabels": label_maps,
        "commonAnnotations": label_maps,
        "externalURL": hostile_text | json_scalars,
        "truncatedAlerts": st.integers() | json_scalars,
        "notification_reason": json_values,
    },
)


class RecordingTarget:
    """Accepts every event, so fuzzed transitions leave this process only here."""

    async def send(self, event: Any, context: SendContext) -> Outcome:
        return Delivered()

    async def check(self, context: SendContext) -> list[Problem]:
        return []


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    directory: Path = tmp_path_factory.mktemp("fuzz-alertmanager")
    store = SQLiteStore(directory / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    app = create_app(
        Settings(db=str(directory / "bridge.db"), bridge_token=TOKEN),
        store=store,
        targets={"health.webhook": RecordingTarget()},
    )
    try:
        with TestClient(app, base_url="http://127.0.0.1") as test_client:
            yield test_client
    finally:
        store.close()


def assert_clear_answer(status: int, text: str) -> None:
    assert status in ACCEPTED, (status, text[:500])
    body = json.loads(text)
    if status == 200:
        assert body["status"] == "accepted"
    else:
        assert isinstance(body.get("error"), str)
        assert body["error"]


@FUZZ
@given(message=messages)
def test_any_message_is_200_or_4xx(client: TestClient, message: Any) -> None:
    response = client.post("/alertmanager", json=message, headers=HEADERS)

    assert_clear_answer(response.status_code, response.text)


@FUZZ
@given(body=json_values)
def test_any_json_is_200_or_4xx(client: TestClient, body: Any) -> None:
    response = client.post("/alertmanager", json=body, headers=HEADERS)

    assert_clear_answer(response.status_code, response.text)


@FUZZ
@given(
    content=st.binary(max_size=300),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/json; charset=latin-1",
            "text/plain",
            "",
            "application/x-www-form-urlencoded",
        ]
    ),
)
def test_any_bytes_is_4xx(
    client: TestClient, content: bytes, content_type: str
) -> None:
    headers = {**HEADERS, "Content-Type": content_type}

    response = client.post("/alertmanager", content=content, headers=headers)

    assert_clear_answer(response.status_code, response.text)
    if response.status_code == 200:
        # Only a valid webhook message may be accepted.
        assert isinstance(json.loads(content)["alerts"], list)
