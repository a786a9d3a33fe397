"""Low disk to notification, through real processes and a real tmpfs.

The exporter reads each tmpfs with statvfs, Prometheus evaluates the
bundled rules on a compressed clock, Alertmanager routes with the shipped
configuration, and the bridge delivers to fake Slack, PagerDuty and a
webhook receiver that checks signatures. Each test drives the fill level.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from e2e.flow import assert_stays, await_one_of, await_sequences, fill
from e2e.processes import wait_for
from e2e.stack import Stack
from e2e.targets import (
    ALL_CLEAR,
    CRITICAL,
    DEESCALATION,
    FULL_CYCLE,
    WARNING,
    pagerduty_events,
    slack_messages,
    verify_webhook_signatures,
)

pytestmark = [pytest.mark.slow, pytest.mark.root]

MakeStack = Callable[..., Stack]


def test_full_cycle_reaches_every_target(make_stack: MakeStack) -> None:
    """Warning, critical, warning again and all-clear, each once, everywhere."""
    stack = make_stack("alpha")

    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING])
    fill(stack, "alpha", 5)
    await_sequences(stack, "alpha", [WARNING, CRITICAL])
    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING, CRITICAL, DEESCALATION])
    fill(stack, "alpha", 100)
    await_sequences(stack, "alpha", FULL_CYCLE)
    assert_stays(stack, "alpha", FULL_CYCLE)

    targets = stack.targets
    assert targets.webhook.rejected == []
    assert verify_webhook_signatures(targets.webhook, targets.webhook_shared_key) == 4

    events = pagerduty_events(targets.pagerduty, "alpha")
    assert [event["event_action"] for event in events] == [
        "trigger",
        "trigger",
        "trigger",
        "resolve",
    ]
    dedup_keys = {event["dedup_key"] for event in events}
    assert len(dedup_keys) == 1
    assert targets.pagerduty.alert_status(dedup_keys.pop()) == "resolved"

    messages = slack_messages(targets.slack, "alpha")
    warning_ts = messages[0]["ts"]
    assert "thread_ts" not in messages[0]
    assert messages[3]["thread_ts"] == warning_ts


def test_two_disks_keep_independent_states(make_stack: MakeStack) -> None:
    """One disk's changes neither notify nor clear the other disk."""
    stack = make_stack("alpha", "bravo")

    fill(stack, "alpha", 15)
    fill(stack, "bravo", 15)
    await_sequences(stack, "alpha", [WARNING])
    await_sequences(stack, "bravo", [WARNING])

    fill(stack, "bravo", 5)
    await_sequences(stack, "bravo", [WARNING, CRITICAL])
    assert_stays(stack, "alpha", [WARNING], seconds=2)

    fill(stack, "alpha", 100)
    await_sequences(stack, "alpha", [WARNING, ALL_CLEAR])
    assert_stays(stack, "bravo", [WARNING, CRITICAL], seconds=2)

    fill(stack, "bravo", 100)
    # In one CI run the critical alert resolved one evaluation before the
    # warning alert, so the bridge sent a de-escalation first (the case
    # "both_resolve_critical_group_first" of test_state_adversarial.py).
    # The likely cause, not confirmed: a scrape appended while Prometheus
    # evaluated the rule group reached only the later rule.
    await_one_of(
        stack,
        "bravo",
        [
            [WARNING, CRITICAL, ALL_CLEAR],
            [WARNING, CRITICAL, DEESCALATION, ALL_CLEAR],
        ],
    )
    assert_stays(stack, "alpha", [WARNING, ALL_CLEAR])

    targets = stack.targets
    alpha_keys = {e["dedup_key"] for e in pagerduty_events(targets.pagerduty, "alpha")}
    bravo_keys = {e["dedup_key"] for e in pagerduty_events(targets.pagerduty, "bravo")}
    assert len(alpha_keys) == 1
    assert len(bravo_keys) == 1
    assert alpha_keys != bravo_keys
    for service in ("alpha", "bravo"):
        messages = slack_messages(targets.slack, service)
        assert messages[-1]["thread_ts"] == messages[0]["ts"], service


def test_stopped_exporter_sends_no_all_clear(make_stack: MakeStack) -> None:
    """A dead exporter is not a healthy disk: no all-clear until data says so."""
    stack = make_stack("alpha")
    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING])

    stack.exporter.stop()
    wait_for(
        lambda: any(
            alert["labels"].get("alertname") == "DiskSpaceUnknown"
            and alert["state"] == "firing"
            for alert in stack.prometheus_alerts("alpha")
        ),
        timeout=30,
        what="DiskSpaceUnknown firing for alpha",
    )
    assert_stays(stack, "alpha", [WARNING])

    # Data returns with the disk still low: the level has not changed.
    stack.exporter.start()
    assert_stays(stack, "alpha", [WARNING])
    fill(stack, "alpha", 100)
    await_sequences(stack, "alpha", [WARNING, ALL_CLEAR])
