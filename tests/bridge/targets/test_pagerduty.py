"""health.pagerduty against the fake Events API v2: events, dedup keys, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes.events import (
    DISK_LABELS,
    ROUTING_KEY,
    context,
    make_event,
    pagerduty_integration,
    run,
)
from fakes.pagerduty import PagerDutyFake

from bridge.model import DiskKey, EventType
from bridge.targets.base import Delivered, Failed, Problem, Retry
from bridge.targets.pagerduty import PagerDutyTarget, build_event, dedup_key


def send(
    pagerduty: PagerDutyFake,
    event_type: EventType = EventType.WARNING,
    routing_key: str = ROUTING_KEY,
    timeout: float = 5.0,
    **fields: Any,
):
    target = PagerDutyTarget(pagerduty.events_url)
    integration = pagerduty_integration(routing_key)
    event = make_event(event_type, **fields)
    return run(lambda client: target.send(event, context(integration, client)), timeout)


def test_warning_triggers_with_stable_dedup_key(pagerduty_fake: PagerDutyFake) -> None:
    outcome = send(pagerduty_fake)

    (event,) = pagerduty_fake.events
    disk_id = DiskKey.from_alert_labels(DISK_LABELS).id
    assert outcome == Delivered()
    assert event["routing_key"] == ROUTING_KEY
    assert event["event_action"] == "trigger"
    assert event["dedup_key"] == f"webpaas-health/{disk_id}"
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["source"] == "db-0.shop.internal:9100"
    assert event["payload"]["component"] == "db"
    assert event["payload"]["group"] == "shop/main"
    assert event["payload"]["class"] == "disk"
    assert event["payload"]["timestamp"] == "2026-12-04T10:00:00Z"
    assert event["payload"]["custom_details"]["labels"] == DISK_LABELS
    assert event["payload"]["custom_details"]["free_percent"] == 14.52
    assert event["links"][0] == {
        "href": "https://runbooks.example.com/low-disk",
        "text": "Runbook",
    }


def test_incident_lifecycle_uses_one_alert(pagerduty_fake: PagerDutyFake) -> None:
    for event_type in (
        EventType.WARNING,
        EventType.CRITICAL,
        EventType.DEESCALATION,
        EventType.ALL_CLEAR,
    ):
        assert send(pagerduty_fake, event_type) == Delivered()

    events = pagerduty_fake.events
    keys = {event["dedup_key"] for event in events}
    assert [event["event_action"] for event in events] == [
        "trigger",
        "trigger",
        "trigger",
        "resolve",
    ]
    assert [event.get("payload", {}).get("severity") for event in events] == [
        "warning",
        "critical",
        "warning",
        None,
    ]
    assert len(keys) == 1
    assert pagerduty_fake.alert_status(keys.pop()) == "resolved"


def test_dedup_key_ignores_alert_group() -> None:
    first = make_event(id="a", external_url="https://am-1.example.com")
    second = make_event(id="b", external_url="https://am-2.example.com")

    assert dedup_key(first) == dedup_key(second)


def test_dedup_key_fits_for_huge_labels() -> None:
    event = make_event(labels={**DISK_LABELS, "huge": "h" * 100_000})

    assert len(dedup_key(event)) <= 255


HOSTILE_LABELS = {
    **DISK_LABELS,
    "service": "d\"b' <x> & {y} [z] _a_ *b* `c` \n\t" + "s" * 2000,
    "team": "équipe 💾 数据",  # sorts after the extras, so it is left out
    **{f"extra{index:03d}": "v" * 5000 for index in range(150)},
}


def test_hostile_labels_fit_limits(pagerduty_fake: PagerDutyFake) -> None:
    outcome = send(pagerduty_fake, labels=HOSTILE_LABELS, description="x" * 10_000)

    (request,) = pagerduty_fake.requests
    event = json.loads(request.body)
    details = event["payload"]["custom_details"]
    assert outcome == Delivered()
    assert len(request.body) < 512 * 1024
    assert len(event["payload"]["summary"]) <= 1024
    assert event["payload"]["summary"].endswith("more characters")
    assert details["labels"]["project"] == "shop"
    assert details["labels"]["mountpoint"] == "/var/lib/mysql"
    assert details["labels"]["service"].endswith("more characters")
    assert "team" not in details["labels"]
    assert details["labels"]["…"] == "and 56 more labels"
    assert details["description"].endswith("more characters")


def test_summary_truncated_to_1024(pagerduty_fake: PagerDutyFake) -> None:
    labels = {**DISK_LABELS, "service": "💾" * 3000}

    body = build_event(make_event(labels=labels), ROUTING_KEY)

    assert len(body["payload"]["summary"]) == 1024
    assert "more characters" in body["payload"]["summary"]


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (202, {}, Delivered()),
        (429, {"Retry-After": "60"}, Retry("PagerDuty answered HTTP 429", 60.0)),
        (429, {}, Retry("PagerDuty answered HTTP 429")),
        (500, {}, Retry("PagerDuty answered HTTP 500")),
        (502, {}, Retry("PagerDuty answered HTTP 502")),
        (503, {}, Retry("PagerDuty answered HTTP 503")),
        (403, {}, Failed("PagerDuty answered HTTP 403: forbidden")),
    ],
)
def test_status_outcomes(
    pagerduty_fake: PagerDutyFake, status: int, headers: dict, expected: Any
) -> None:
    pagerduty_fake.fail_next(status=status, body="forbidden", headers=headers)

    outcome = send(pagerduty_fake)

    assert outcome == expected


def test_invalid_routing_key_fails_with_message(pagerduty_fake: PagerDutyFake) -> None:
    outcome = send(pagerduty_fake, routing_key="too-short")

    assert outcome == Failed(
        "PagerDuty rejected the event: Event object is invalid; Length of "
        "'routing_key' is incorrect (should be 32 characters)"
    )
    assert "too-short" not in outcome.reason


def test_timeout_retried(pagerduty_fake: PagerDutyFake) -> None:
    pagerduty_fake.delay_next(seconds=3)

    outcome = send(pagerduty_fake, timeout=0.3)

    assert outcome == Retry("PagerDuty did not answer in time (ReadTimeout)")


def check(pagerduty: PagerDutyFake, routing_key: str = ROUTING_KEY) -> list[Problem]:
    target = PagerDutyTarget(pagerduty.events_url)
    integration = pagerduty_integration(routing_key)
    return run(lambda client: target.check(context(integration, client)))


def test_check_triggers_and_resolves_test_alert(pagerduty_fake: PagerDutyFake) -> None:
    problems = check(pagerduty_fake)

    trigger, resolve = pagerduty_fake.events
    assert problems == []
    assert trigger["event_action"] == "trigger"
    assert resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert trigger["dedup_key"].startswith("webpaas-health/test/")
    assert trigger["payload"]["summary"].startswith("[TEST]")
    assert pagerduty_fake.alert_status(trigger["dedup_key"]) == "resolved"


def test_check_names_rejected_routing_key(pagerduty_fake: PagerDutyFake) -> None:
    pagerduty_fake.routing_keys = {ROUTING_KEY}

    problems = check(pagerduty_fake, routing_key="f" * 32)

    assert problems == [
        Problem(
            "integration",
            "the test trigger was rejected: PagerDuty rejected the event: Event "
            "object is invalid; Invalid routing key",
        )
    ]
    assert pagerduty_fake.events == []


def test_check_reports_unreachable_service() -> None:
    with PagerDutyFake() as stopped:
        url = stopped.events_url
    target = PagerDutyTarget(url)
    integration = pagerduty_integration()

    problems = run(lambda client: target.check(context(integration, client)))

    assert problems == [
        Problem(
            "integration",
            "the test trigger failed: could not reach PagerDuty (ConnectError)",
        )
    ]
