"""health.webhook against a real local receiver: body, headers, outcomes, SSRF."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fakes.events import DISK_LABELS, context, make_event, run, webhook_integration
from fakes.jsonschema_subset import SUPPORTED_KEYWORDS, schema_errors
from fakes.webhook_receiver import WebhookReceiver

from bridge.model import EventType
from bridge.targets.base import Delivered, Failed, Retry
from bridge.targets.webhook import (
    EVENT_ID_HEADER,
    TIMESTAMP_HEADER,
    WebhookTarget,
    build_request,
    event_body,
)

SENT_AT = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def send(
    receiver_url: str,
    event_type: EventType = EventType.WARNING,
    target: WebhookTarget | None = None,
    timeout: float = 5.0,
    **fields: Any,
):
    target = target or WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(receiver_url)
    event = make_event(event_type, **fields)
    return run(lambda client: target.send(event, context(integration, client)), timeout)


def _schema_keywords(schema: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(schema, dict):
        for name, value in schema.items():
            if name == "properties":
                for item in value.values():
                    found |= _schema_keywords(item)
            else:
                found.add(name)
                found |= _schema_keywords(value)
    return found


@pytest.mark.parametrize("event_type", list(EventType))
def test_body_matches_schema(event_type: EventType, webhook_schema: dict) -> None:
    body = json.loads(json.dumps(event_body(make_event(event_type), SENT_AT)))

    assert schema_errors(body, webhook_schema) == []


def _property_paths(value: Any, schema: dict, path: str = "$") -> set[str]:
    """Return the paths of body objects whose keys differ from the schema's."""
    differing: set[str] = set()
    if isinstance(value, dict) and "properties" in schema:
        if set(value) != set(schema["properties"]):
            differing.add(path)
        for name, item in value.items():
            if name in schema["properties"]:
                child = schema["properties"][name]
                differing |= _property_paths(item, child, f"{path}.{name}")
    return differing


@pytest.mark.parametrize("event_type", list(EventType))
def test_schema_lists_every_body_property(
    event_type: EventType, webhook_schema: dict
) -> None:
    # The schema allows unknown properties for receivers' sake, so only this
    # comparison notices a field the code sends but the schema omits.
    body = event_body(make_event(event_type), SENT_AT)

    assert _property_paths(body, webhook_schema) == set()


def test_schema_uses_only_checked_keywords(webhook_schema: dict) -> None:
    assert _schema_keywords(webhook_schema) <= SUPPORTED_KEYWORDS


def test_schema_check_can_fail(webhook_schema: dict) -> None:
    body = event_body(make_event(), SENT_AT)
    body["type"] = "panic"
    del body["disk"]

    errors = schema_errors(body, webhook_schema)

    assert "$: missing 'disk'" in errors
    assert any(error.startswith("$.type:") for error in errors)


def test_warning_body_fields() -> None:
    body = event_body(make_event(EventType.WARNING), SENT_AT)

    assert body["id"] == "evt-warning-1"
    assert body["type"] == "warning"
    assert body["level"] == "warning"
    assert body["previous_level"] == "ok"
    assert body["free_percent"] == 14.52
    assert body["thresholds"] == {"warning_percent": 20.0, "critical_percent": 10.0}
    assert body["disk"]["labels"] == DISK_LABELS
    assert body["disk"]["mountpoint"] == "/var/lib/mysql"
    assert body["starts_at"] == "2026-12-04T10:00:00Z"
    assert body["resolved_at"] is None
    assert body["sent_at"] == "2026-12-04T12:00:00Z"
    assert body["links"]["runbook_url"] == "https://runbooks.example.com/low-disk"
    assert body["test"] is False


def test_all_clear_body_fields() -> None:
    body = event_body(make_event(EventType.ALL_CLEAR), SENT_AT)

    assert body["type"] == "all_clear"
    assert body["level"] == "ok"
    assert body["free_percent"] is None
    assert body["resolved_at"] == "2026-12-04T11:30:00Z"


def test_headers_carry_event_id_and_timestamp() -> None:
    body, headers = build_request(make_event(), None, SENT_AT)

    assert headers["Content-Type"] == "application/json"
    assert headers[EVENT_ID_HEADER] == "evt-warning-1"
    assert headers[TIMESTAMP_HEADER] == str(int(SENT_AT.timestamp()))
    assert "X-JWS-Signature" not in headers
    assert json.loads(body)["id"] == headers[EVENT_ID_HEADER]


def test_delivers_to_receiver(webhook_receiver: WebhookReceiver) -> None:
    outcome = send(f"{webhook_receiver.url}/hook?src=bridge")

    (request,) = webhook_receiver.requests
    assert outcome == Delivered()
    assert request.method == "POST"
    assert request.path == "/hook?src=bridge"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-webpaas-event-id"] == "evt-warning-1"
    assert webhook_receiver.events[0]["id"] == "evt-warning-1"


HOSTILE_LABELS = {
    **DISK_LABELS,
    "service": "d\"b' <x> & {y} [z] _a_ *b* `c`",
    "mountpoint": "/mnt/with\nnewline\tand tab",
    "team": "équipe 💾 数据",
    "huge": "h" * 100_000,
}


def test_hostile_labels_stay_valid_json(webhook_receiver: WebhookReceiver) -> None:
    outcome = send(
        webhook_receiver.url,
        labels=HOSTILE_LABELS,
        summary="bad \ud800 half",
        description="x" * 10_000,
    )

    (request,) = webhook_receiver.requests
    labels = json.loads(request.body)["disk"]["labels"]
    annotations = json.loads(request.body)["annotations"]
    assert outcome == Delivered()
    assert labels["service"] == HOSTILE_LABELS["service"]
    assert labels["mountpoint"] == HOSTILE_LABELS["mountpoint"]
    assert labels["team"] == "équipe 💾 数据"
    assert labels["huge"] == "h" * 100_000
    assert annotations["summary"] == "bad \ufffd half"
    assert len(annotations["description"]) == 4000
    assert annotations["description"].endswith("more characters")


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Delivered()),
        (201, {}, Delivered()),
        (204, {}, Delivered()),
        (408, {}, Retry("the webhook receiver answered HTTP 408")),
        (
            429,
            {"Retry-After": "7"},
            Retry("the webhook receiver answered HTTP 429", 7.0),
        ),
        (429, {}, Retry("the webhook receiver answered HTTP 429")),
        (500, {}, Retry("the webhook receiver answered HTTP 500")),
        (
            503,
            {"Retry-After": "120"},
            Retry("the webhook receiver answered HTTP 503", 120.0),
        ),
        (400, {}, Failed("the webhook receiver answered HTTP 400: nope")),
        (404, {}, Failed("the webhook receiver answered HTTP 404: nope")),
        (410, {}, Failed("the webhook receiver answered HTTP 410: nope")),
    ],
)
def test_status_outcomes(
    webhook_receiver: WebhookReceiver, status: int, headers: dict, expected: Any
) -> None:
    webhook_receiver.fail_next(status=status, body="nope", headers=headers)

    outcome = send(webhook_receiver.url)

    assert outcome == expected


def test_redirect_is_not_followed(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.fail_next(
        status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )

    outcome = send(webhook_receiver.url)

    assert isinstance(outcome, Failed)
    assert "redirect" in outcome.reason
    assert "169.254" not in outcome.reason
    assert len(webhook_receiver.requests) == 1


def test_timeout_is_retried(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.delay_next(seconds=3)

    outcome = send(webhook_receiver.url, timeout=0.3)

    assert outcome == Retry("the webhook receiver did not answer in time (ReadTimeout)")


def test_connection_refused_is_retried() -> None:
    with WebhookReceiver() as receiver:
        url = receiver.url

    outcome = send(url)

    assert outcome == Retry("could not reach the webhook receiver (ConnectError)")


def test_loopback_url_rejected_at_send(webhook_receiver: WebhookReceiver) -> None:
    target = WebhookTarget(allow_private_targets=False)

    outcome = send(webhook_receiver.url, target=target)

    assert isinstance(outcome, Failed)
    assert "loopback" in outcome.reason
    assert webhook_receiver.requests == []


def test_name_rebound_to_private_rejected_at_send(
    webhook_receiver: WebhookReceiver,
) -> None:
    async def rebinding_resolver(host: str, port: int) -> list[str]:
        return ["10.20.30.40"]

    target = WebhookTarget(allow_private_targets=False, resolver=rebinding_resolver)

    outcome = send("http://hooks.example.com/hook", target=target)

    assert isinstance(outcome, Failed)
    assert "10.20.30.40" in outcome.reason


def test_unresolvable_name_is_retried() -> None:
    async def failing_resolver(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    target = WebhookTarget(allow_private_targets=False, resolver=failing_resolver)

    outcome = send("https://hooks.example.com/hook", target=target)

    assert isinstance(outcome, Retry)
    assert "could not be resolved" in outcome.reason


def test_connects_to_checked_address_with_original_host(
    webhook_receiver: WebhookReceiver,
) -> None:
    port = webhook_receiver.url.rsplit(":", 1)[1]
    resolved: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        return ["127.0.0.1"]

    target = WebhookTarget(allow_private_targets=True, resolver=resolver)

    outcome = send(f"http://receiver.test:{port}/hook", target=target)

    (request,) = webhook_receiver.requests
    assert outcome == Delivered()
    assert resolved == ["receiver.test"]
    assert request.headers["host"] == f"receiver.test:{port}"


def test_invalid_shared_key_fails_without_echo(
    webhook_receiver: WebhookReceiver,
) -> None:
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(webhook_receiver.url, shared_key="a" * 45)

    outcome = run(
        lambda client: target.send(make_event(), context(integration, client))
    )

    assert isinstance(outcome, Failed)
    assert outcome.reason.startswith("shared_key:")
    assert "a" * 45 not in outcome.reason
    assert webhook_receiver.requests == []


def test_check_sends_test_event(webhook_receiver: WebhookReceiver) -> None:
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(webhook_receiver.url)

    problems = run(lambda client: target.check(context(integration, client)))

    (event,) = webhook_receiver.events
    assert problems == []
    assert event["test"] is True
    assert event["id"].startswith("test-")


def test_check_reports_failure_in_plain_words(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.fail_next(status=404, body="no such hook")
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(webhook_receiver.url)

    problems = run(lambda client: target.check(context(integration, client)))

    assert [str(problem) for problem in problems] == [
        "url: the test event was not delivered: the webhook receiver answered "
        "HTTP 404: no such hook"
    ]
