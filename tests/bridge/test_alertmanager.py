"""Tests of the Alertmanager webhook parser."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from bridge.alertmanager import parse_message, parse_rfc3339
from bridge.errors import PayloadError


def payload(**changes: Any) -> dict[str, Any]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "LowDiskSpace", "severity": "warning", "project": "p"},
        "annotations": {"free_percent": "12.5"},
        "startsAt": "2026-03-01T12:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "abc123",
    }
    document = {
        "version": "4",
        "groupKey": '{}:{alertname="LowDiskSpace"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "bridge",
        "groupLabels": {"alertname": "LowDiskSpace"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }
    document.update(changes)
    return document


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Nine fractional digits, as Go prints them; digits past µs drop.
        ("2026-03-01T12:00:00.123456789Z", datetime(2026, 3, 1, 12, 0, 0, 123456, UTC)),
        # No fraction at all.
        ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, 0, tzinfo=UTC)),
        # One digit, and a positive offset converted to UTC.
        ("2026-03-01T12:00:00.5+02:00", datetime(2026, 3, 1, 10, 0, 0, 500000, UTC)),
        # A negative offset with minutes, lower-case separators.
        (
            "2026-03-01t12:00:00.000000001-05:30",
            datetime(2026, 3, 1, 17, 30, tzinfo=UTC),
        ),
        # Go's zero time is "no time".
        ("0001-01-01T00:00:00Z", None),
    ],
)
def test_parse_rfc3339_accepts(text: str, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-01T12:00:00",  # no offset
        "2026-03-01T12:00:00.1234567890Z",  # ten fractional digits
        "2026-13-01T12:00:00Z",  # no month 13
        "2026-02-30T12:00:00Z",  # no such day
        "2026-03-01T12:00:00+25:00",  # offset out of range
        "\u0662\u0660\u0662\u0666-03-01T12:00:00Z",  # Arabic-Indic digits
        "2026-03-01T12:00:00.\uff15Z",  # a full-width digit in the fraction
        "yesterday",
    ],
)
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"RFC 3339|valid date|years"):
        parse_rfc3339(text)


def test_message_fields_parsed() -> None:
    message = parse_message(body(payload()))

    (alert,) = message.alerts
    assert message.receiver == "bridge"
    assert message.external_url == "http://alertmanager:9093"
    assert message.group_key == '{}:{alertname="LowDiskSpace"}'
    assert alert.firing
    assert alert.ends_at is None
    assert alert.starts_at == datetime(2026, 3, 1, 12, 0, 0, 123456, UTC)
    assert alert.labels["severity"] == "warning"
    assert alert.annotations == {"free_percent": "12.5"}
    assert alert.fingerprint == "abc123"


def test_unknown_fields_tolerated() -> None:
    document = payload(notification_reason="repeat", routeLabels={"a": "b"})
    document["alerts"][0]["newField"] = {"nested": [1, 2]}

    message = parse_message(body(document))

    assert len(message.alerts) == 1


def test_resolved_alert_keeps_ends_at() -> None:
    document = payload()
    document["alerts"][0].update(status="resolved", endsAt="2026-03-01T12:30:00Z")

    (alert,) = parse_message(body(document)).alerts

    assert not alert.firing
    assert alert.ends_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)


def test_missing_optional_parts_default() -> None:
    document = {
        "alerts": [
            {
                "status": "resolved",
                "labels": {"alertname": "LowDiskSpace"},
                "startsAt": "2026-03-01T12:00:00Z",
            }
        ]
    }

    (alert,) = parse_message(body(document)).alerts

    assert alert.annotations == {}
    assert alert.ends_at is None
    assert alert.generator_url == ""


def alert_with(**changes: Any) -> dict[str, Any]:
    document = payload()
    document["alerts"][0].update(changes)
    for key, value in changes.items():
        if value is ...:
            del document["alerts"][0][key]
    return document


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        ([], "", "body must be a JSON object"),
        ({}, "alerts", "is missing"),
        ({"alerts": {}}, "alerts", "must be a list"),
        ({"alerts": [1]}, "alerts[0]", "must be a JSON object"),
        (alert_with(status="pending"), "alerts[0].status", "is 'pending'; expected"),
        (alert_with(status=...), "alerts[0].status", "is missing"),
        (alert_with(labels=...), "alerts[0].labels", "is missing"),
        (alert_with(labels=[]), "alerts[0].labels", "must be a JSON object of strings"),
        (alert_with(labels=None), "alerts[0].labels", "of strings, not null"),
        (alert_with(labels={"a": 1}), "alerts[0].labels.a", "must be a string, not 1"),
        (
            alert_with(annotations={"x": None}),
            "alerts[0].annotations.x",
            "must be a string",
        ),
        (alert_with(startsAt=...), "alerts[0].startsAt", "is missing"),
        (alert_with(startsAt=5), "alerts[0].startsAt", "must be an RFC 3339 string"),
        (
            alert_with(startsAt="2026-03-01"),
            "alerts[0].startsAt",
            "'2026-03-01' is not an RFC 3339 timestamp",
        ),
        (
            alert_with(startsAt="0001-01-01T00:00:00Z"),
            "alerts[0].startsAt",
            "must not be the zero time",
        ),
        (alert_with(endsAt="soon"), "alerts[0].endsAt", "is not an RFC 3339"),
        (alert_with(generatorURL=3), "alerts[0].generatorURL", "must be a string"),
        (payload(truncatedAlerts="x"), "truncatedAlerts", "must be an integer"),
        (payload(receiver=[]), "receiver", "must be a string"),
    ],
)
def test_invalid_payload_names_field(document: Any, field: str, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_message(body(document))

    assert caught.value.field == field
    assert problem in caught.value.problem
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "body is not valid JSON: Expecting property name"),
        (b'{"alerts": [] , "alerts": []}', "duplicate key 'alerts'"),
        (b'{"alerts": "\xff"}', "body is not valid UTF-8 (byte 12)"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_undecodable_body_is_400(raw: bytes, problem: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_message(raw)

    assert problem in caught.value.problem
    assert caught.value.status == 400


def test_ten_thousand_alerts_parse() -> None:
    document = payload()
    template = document["alerts"][0]
    document["alerts"] = [
        {**template, "labels": {**template["labels"], "instance": f"host-{index}"}}
        for index in range(10_000)
    ]

    message = parse_message(body(document))

    assert len(message.alerts) == 10_000


def test_lone_surrogates_become_replacement_character() -> None:
    # json.loads turns a "\\ud800" escape into a lone surrogate, which no
    # UTF-8 encoder accepts; Alertmanager never sends one, a fuzzer may.
    raw = body(payload()).replace(b'"p"', b'"p\\ud800"')
    raw = raw.replace(b'"12.5"', b'"\\udfff12.5"')
    raw = raw.replace(b'"http://prometheus/graph"', b'"http://prometheus/\\ud83d"')

    message = parse_message(raw)

    (alert,) = message.alerts
    assert alert.labels["project"] == "p\ufffd"
    assert alert.annotations["free_percent"] == "\ufffd12.5"
    assert alert.generator_url == "http://prometheus/\ufffd"
