"""The fake servers behave as the APIs they stand for, so other tests can trust them."""

from __future__ import annotations

import httpx
from fakes.pagerduty import PagerDutyFake
from fakes.slack import DEFAULT_TOKEN, SlackFake
from fakes.webhook_receiver import WebhookReceiver


def test_slack_fake_requires_token(slack_fake: SlackFake) -> None:
    response = httpx.post(f"{slack_fake.api_url}/auth.test")

    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": "not_authed"}


def test_slack_fake_auth_test_with_token(slack_fake: SlackFake) -> None:
    response = httpx.post(
        f"{slack_fake.api_url}/auth.test",
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )

    assert response.json()["ok"] is True
    assert response.json()["team_id"] == "T0FAKE0000"


def test_slack_fake_revoked_token(slack_fake: SlackFake) -> None:
    slack_fake.token_errors[DEFAULT_TOKEN] = "token_revoked"

    response = httpx.post(
        f"{slack_fake.api_url}/chat.postMessage",
        json={"channel": "#alerts", "text": "x"},
        headers={"Authorization": f"Bearer {DEFAULT_TOKEN}"},
    )

    assert response.json() == {"ok": False, "error": "token_revoked"}


def test_pagerduty_fake_rejects_long_summary(pagerduty_fake: PagerDutyFake) -> None:
    event = {
        "routing_key": "k" * 32,
        "event_action": "trigger",
        "payload": {"summary": "s" * 1025, "source": "x", "severity": "warning"},
    }

    response = httpx.post(pagerduty_fake.events_url, json=event)

    assert response.status_code == 400
    assert response.json()["errors"] == [
        "'payload.summary' is longer than 1024 characters"
    ]


def test_pagerduty_fake_resolve_needs_dedup_key(pagerduty_fake: PagerDutyFake) -> None:
    response = httpx.post(
        pagerduty_fake.events_url,
        json={"routing_key": "k" * 32, "event_action": "resolve"},
    )

    assert response.status_code == 400


def test_fail_next_then_recovers(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.fail_next(2, status=503)

    statuses = [
        httpx.post(webhook_receiver.url, content=b"{}").status_code for _ in range(3)
    ]

    assert statuses == [503, 503, 200]
    assert len(webhook_receiver.requests) == 3
    assert len(webhook_receiver.events) == 1


def test_signed_receiver_rejects_unsigned(
    signed_webhook_receiver: WebhookReceiver,
) -> None:
    response = httpx.post(signed_webhook_receiver.url, content=b"{}")

    assert response.status_code == 401
    assert signed_webhook_receiver.rejected[0][1] == "missing X-JWS-Signature"
