"""Target registry: one target per integration type, configured URLs."""

from __future__ import annotations

import pytest

from bridge.integrations import PAGERDUTY, SLACK, TYPES, WEBHOOK
from bridge.targets.pagerduty import PagerDutyTarget
from bridge.targets.registry import (
    UnknownIntegrationType,
    build_targets,
    target_for,
)
from bridge.targets.slack import SlackTarget
from bridge.targets.webhook import WebhookTarget


def test_build_targets_uses_configured_urls() -> None:
    targets = build_targets(
        "http://127.0.0.1:1/api/", "http://127.0.0.1:2/v2/enqueue", True
    )

    slack = targets[SLACK]
    pagerduty = targets[PAGERDUTY]
    webhook = targets[WEBHOOK]
    assert set(targets) == set(TYPES)
    assert isinstance(slack, SlackTarget)
    assert slack.api_url == "http://127.0.0.1:1/api"
    assert isinstance(pagerduty, PagerDutyTarget)
    assert pagerduty.events_url == "http://127.0.0.1:2/v2/enqueue"
    assert isinstance(webhook, WebhookTarget)
    assert webhook.allow_private_targets is True


def test_target_for_given_targets() -> None:
    targets = build_targets("http://a/api", "http://b/v2/enqueue", False)

    assert target_for(WEBHOOK, targets) is targets[WEBHOOK]


def test_target_for_unknown_type_names_choices() -> None:
    with pytest.raises(UnknownIntegrationType) as raised:
        target_for("health.email", {})

    assert str(raised.value) == (
        "unknown integration type 'health.email'; expected one of "
        "('health.slack', 'health.pagerduty', 'health.webhook')"
    )
    assert isinstance(raised.value, KeyError)
