"""What each fake target received, reduced to one comparable sequence per disk.

Every target formats events its own way. These helpers turn a target's
recorded requests into the list of notification kinds that one disk got,
``["warning", "critical", "deescalation", "all_clear"]``, so that a test
can assert the exact sequence with one comparison per target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fakes.pagerduty import PagerDutyFake
from fakes.slack import SlackFake
from fakes.webhook_receiver import WebhookReceiver
from jwcrypto import jwk, jws

WARNING = "warning"
CRITICAL = "critical"
DEESCALATION = "deescalation"
ALL_CLEAR = "all_clear"
FULL_CYCLE = [WARNING, CRITICAL, DEESCALATION, ALL_CLEAR]


@dataclass
class Targets:
    """The three fake targets one stack delivers to."""

    slack: SlackFake
    pagerduty: PagerDutyFake
    webhook: WebhookReceiver
    webhook_shared_key: str

    def sequences(self, service: str) -> dict[str, list[str]]:
        """Return the notification kinds each target received for ``service``."""
        return {
            "slack": slack_kinds(self.slack, service),
            "pagerduty": pagerduty_kinds(self.pagerduty, service),
            "webhook": webhook_kinds(self.webhook, service),
        }

    def total(self) -> int:
        """Return how many notifications all targets accepted, for every disk."""
        return (
            len(self.slack.messages)
            + len(self.pagerduty.events)
            + len(self.webhook.events)
        )


def _mentions(document: Any, service: str) -> bool:
    # Each test disk is mounted on .../disks/<service>, and every format
    # names the disk's mount point: in the webhook body's labels, in Slack's
    # text, in PagerDuty's payload.
    return f"/disks/{service}" in json.dumps(document, ensure_ascii=False)


def webhook_events(receiver: WebhookReceiver, service: str) -> list[dict[str, Any]]:
    return [event for event in receiver.events if _mentions(event, service)]


def webhook_kinds(receiver: WebhookReceiver, service: str) -> list[str]:
    return [str(event["type"]) for event in webhook_events(receiver, service)]


def slack_messages(slack: SlackFake, service: str) -> list[dict[str, Any]]:
    return [message for message in slack.messages if _mentions(message, service)]


# How the bridge's Slack text starts for each kind of event.
SLACK_TITLES = (
    ("Disk space all clear", ALL_CLEAR),
    ("Low disk space: back to warning", DEESCALATION),
    ("Low disk space: critical", CRITICAL),
    ("Low disk space: warning", WARNING),
)


def slack_kind(message: dict[str, Any]) -> str:
    """Classify one Slack message by the title its fallback text starts with."""
    text = message.get("text", "")
    for title, kind in SLACK_TITLES:
        if text.startswith(title):
            return kind
    return f"unknown: {text[:80]}"


def slack_kinds(slack: SlackFake, service: str) -> list[str]:
    return [slack_kind(message) for message in slack_messages(slack, service)]


def pagerduty_events(pagerduty: PagerDutyFake, service: str) -> list[dict[str, Any]]:
    """Return the service's triggers and the resolves that share their dedup key.

    A resolve carries no payload, so only its dedup key ties it to a disk.
    """
    events = pagerduty.events
    keys = {
        event["dedup_key"]
        for event in events
        if event["event_action"] == "trigger" and _mentions(event, service)
    }
    return [
        event
        for event in events
        if event["dedup_key"] in keys
        and (event["event_action"] == "resolve" or _mentions(event, service))
    ]


def pagerduty_kinds(pagerduty: PagerDutyFake, service: str) -> list[str]:
    """Classify PagerDuty events: trigger severity, and resolve as an all-clear.

    A warning trigger after a critical one is the de-escalation: PagerDuty
    has no other way to lower an open incident's severity.
    """
    kinds: list[str] = []
    for event in pagerduty_events(pagerduty, service):
        if event["event_action"] == "resolve":
            kinds.append(ALL_CLEAR)
            continue
        severity = event["payload"]["severity"]
        if severity == "critical":
            kinds.append(CRITICAL)
        elif kinds and kinds[-1] in (CRITICAL, DEESCALATION):
            kinds.append(DEESCALATION)
        else:
            kinds.append(severity)
    return kinds


def verify_webhook_signatures(receiver: WebhookReceiver, shared_key: str) -> int:
    """Verify every recorded request's X-JWS-Signature the documented way.

    Returns:
        How many requests were verified.

    Raises:
        jwcrypto.common.JWException: a signature does not verify.
    """
    key = jwk.JWK(kty="oct", k=shared_key)
    for request in receiver.requests:
        token = jws.JWS()
        token.deserialize(request.headers["x-jws-signature"])
        token.verify(key, alg="HS256", detached_payload=request.body)
    return len(receiver.requests)
