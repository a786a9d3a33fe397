"""Restarts in the middle of an incident lose and repeat no notification."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from e2e.flow import assert_stays, await_sequences, fill
from e2e.processes import wait_for
from e2e.stack import Stack
from e2e.targets import ALL_CLEAR, CRITICAL, DEESCALATION, FULL_CYCLE, WARNING

pytestmark = [pytest.mark.slow, pytest.mark.root]

MakeStack = Callable[..., Stack]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_bridge_restart_while_firing(
    make_stack: MakeStack, stop_signal: signal.Signals
) -> None:
    """Alertmanager retries into the restarted bridge; the critical arrives once."""
    stack = make_stack("alpha")
    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING])

    stack.bridge.stop(stop_signal)
    fill(stack, "alpha", 5)
    stack.wait_for_firing("alpha", "critical")
    wait_for(
        lambda: any(
            alert["labels"].get("severity") == "critical"
            for alert in stack.alertmanager_alerts("alpha")
        ),
        timeout=30,
        what="Alertmanager holding the critical alert",
    )
    stack.bridge.start()

    await_sequences(stack, "alpha", [WARNING, CRITICAL])
    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING, CRITICAL, DEESCALATION])
    fill(stack, "alpha", 100)
    await_sequences(stack, "alpha", FULL_CYCLE)
    assert_stays(stack, "alpha", FULL_CYCLE)


def test_bridge_killed_with_delivery_pending(make_stack: MakeStack) -> None:
    """A delivery still being retried survives SIGKILL through the outbox."""
    stack = make_stack("alpha")
    slack = stack.targets.slack
    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING])

    # Slack answers 503 until reset, so the critical waits in the outbox.
    slack.fail_next(10_000, status=503)
    attempts_before = len(slack.requests)
    fill(stack, "alpha", 5)
    wait_for(
        lambda: stack.targets.sequences("alpha")["pagerduty"] == [WARNING, CRITICAL],
        timeout=60,
        what="the critical at PagerDuty",
    )
    wait_for(
        lambda: len(slack.requests) > attempts_before,
        timeout=30,
        what="a failed attempt at Slack",
    )
    stack.bridge.stop(signal.SIGKILL)
    slack.reset()
    stack.bridge.start()

    await_sequences(stack, "alpha", [WARNING, CRITICAL])
    assert_stays(stack, "alpha", [WARNING, CRITICAL])


def test_alertmanager_restart_while_resolving(make_stack: MakeStack) -> None:
    """The all-clear that resolves during an Alertmanager restart arrives once."""
    stack = make_stack("alpha")
    fill(stack, "alpha", 15)
    await_sequences(stack, "alpha", [WARNING])

    # Alertmanager keeps its notification log in its storage directory and
    # writes it on SIGTERM; Prometheus re-sends resolved alerts to the new
    # process every resend delay.
    stack.alertmanager.stop(signal.SIGTERM)
    fill(stack, "alpha", 100)
    stack.wait_for_resolved("alpha")
    stack.alertmanager.start()

    await_sequences(stack, "alpha", [WARNING, ALL_CLEAR])
    assert_stays(stack, "alpha", [WARNING, ALL_CLEAR])
