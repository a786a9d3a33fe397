"""``health.pagerduty``: PagerDuty Events API v2, one alert per disk.

Every event of a disk uses the same ``dedup_key``, ``webpaas-health/`` plus
the disk id, so a warning, an escalation to critical and a de-escalation
update one PagerDuty alert, and the all-clear resolves it. The key does not
depend on the Alertmanager group, which changes with routes.

Events API v2 status codes (PagerDuty developer docs, "Events API v2
Overview"): 202 accepted, 400 invalid event and final, 429 too many events
and retried, 5xx retried. An event may be at most 512 KB, so
label values and the number of labels in ``custom_details`` are capped.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import httpx

from bridge.integrations import PAGERDUTY
from bridge.model import Event, EventType, Level
from bridge.targets.base import Delivered, Failed, Outcome, Problem, SendContext
from bridge.targets.common import (
    USER_AGENT,
    absolute_http_url,
    free_percent,
    headline,
    iso,
    make_test_event,
    mask_request_secrets,
    response_detail,
    status_outcome,
    transport_retry,
)
from bridge.text import ELLIPSIS, json_bytes, scrub, truncate

DEDUP_KEY_PREFIX = "webpaas-health/"
MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
# Limits of this bridge, not of PagerDuty: chosen so that 100 labels of
# 1,000 characters stay far below the 512 KB event limit and PagerDuty's
# pages stay readable.
MAX_SOURCE = 255
MAX_DETAIL_VALUE = 1000
MAX_DETAIL_LABELS = 100
IDENTIFYING_LABELS = ("project", "environment", "service", "mountpoint", "instance")
SEVERITY = {Level.WARNING: "warning", Level.CRITICAL: "critical"}


def dedup_key(event: Event) -> str:
    """Return the alert's dedup key: stable per disk, or unique for a test."""
    if event.test:
        return f"{DEDUP_KEY_PREFIX}test/{event.id}"[:MAX_DEDUP_KEY]
    return f"{DEDUP_KEY_PREFIX}{event.disk.id}"


def _source(labels: dict[str, str]) -> str:
    if labels.get("instance"):
        return truncate(labels["instance"], MAX_SOURCE)
    parts = [labels.get("service"), labels.get("mountpoint")]
    joined = ":".join(part for part in parts if part)
    return truncate(joined or "webpaas-health", MAX_SOURCE)


def _label_details(labels: dict[str, str]) -> dict[str, str]:
    # The labels that name the disk come first, so a cap never drops them.
    names = sorted(labels, key=lambda name: (name not in IDENTIFYING_LABELS, name))
    details = {
        name: truncate(labels[name], MAX_DETAIL_VALUE)
        for name in names[:MAX_DETAIL_LABELS]
    }
    left_out = len(names) - MAX_DETAIL_LABELS
    if left_out > 0:
        details[ELLIPSIS] = f"and {left_out} more labels"
    return details


def build_event(event: Event, routing_key: str) -> dict[str, Any]:
    """Build the Events API v2 body for one event."""
    if event.type is EventType.ALL_CLEAR:
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key(event),
        }

    labels = {
        truncate(scrub(name), MAX_DETAIL_VALUE): scrub(value)
        for name, value in event.disk.labels
    }
    group = "/".join(
        value for value in (labels.get("project"), labels.get("environment")) if value
    )
    details: dict[str, Any] = {
        "event_id": event.id,
        "event_type": event.type.value,
        "level": event.level.label,
        "previous_level": event.previous_level.label,
        "free_percent": free_percent(event),
        "thresholds": {
            "warning_percent": event.thresholds.warning_percent,
            "critical_percent": event.thresholds.critical_percent,
        },
        "labels": _label_details(labels),
        "test": event.test,
    }
    if event.description:
        details["description"] = truncate(scrub(event.description), MAX_DETAIL_VALUE)

    payload: dict[str, Any] = {
        "summary": truncate(headline(event), MAX_SUMMARY),
        "source": _source(labels),
        "severity": SEVERITY[event.level],
        "timestamp": iso(event.starts_at or event.occurred_at),
        "class": "disk",
        "custom_details": details,
    }
    if labels.get("service"):
        payload["component"] = truncate(labels["service"], MAX_SOURCE)
    if group:
        payload["group"] = truncate(group, MAX_SOURCE)

    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(event),
        "payload": payload,
        "client": "webpaas-health",
    }
    client_url = absolute_http_url(event.external_url)
    if client_url:
        body["client_url"] = client_url
    links = [
        {"href": url, "text": text}
        for url, text in (
            (absolute_http_url(event.runbook_url), "Runbook"),
            (absolute_http_url(event.generator_url), "Alert source"),
        )
        if url
    ]
    if links:
        body["links"] = links
    return body


class PagerDutyTarget:
    """Triggers and resolves one PagerDuty alert per disk."""

    type: ClassVar[str] = PAGERDUTY

    def __init__(self, events_url: str) -> None:
        self.events_url = events_url

    async def send(self, event: Event, context: SendContext) -> Outcome:
        """Send a trigger (warning, critical) or a resolve (all-clear)."""
        routing_key = context.integration.secrets.get("routing_key", "")
        body = build_event(event, routing_key)
        try:
            response = await context.client.post(
                self.events_url,
                content=json_bytes(body),
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
                follow_redirects=False,
            )
        except httpx.HTTPError as error:
            return transport_retry(error, "PagerDuty")

        if response.status_code == 400:
            detail = _error_detail(response, routing_key)
            return Failed(f"PagerDuty rejected the event{detail}")
        outcome = status_outcome(response, "PagerDuty")
        return outcome if outcome is not None else Delivered()

    async def check(self, context: SendContext) -> list[Problem]:
        """Trigger a test alert with its own dedup key, then resolve it."""
        trigger = make_test_event(EventType.WARNING)
        problems = _problems("trigger", await self.send(trigger, context))
        if problems:
            return problems

        # The resolve must carry the test alert's dedup key, made from its id.
        resolve = dataclasses.replace(
            make_test_event(EventType.ALL_CLEAR), id=trigger.id
        )
        return _problems("resolve", await self.send(resolve, context))


def _problems(action: str, outcome: Outcome) -> list[Problem]:
    if isinstance(outcome, Delivered):
        return []
    field = "routing_key" if "routing_key" in outcome.reason else "integration"
    kind = "was rejected" if isinstance(outcome, Failed) else "failed"
    return [Problem(field, f"the test {action} {kind}: {outcome.reason}")]


def _error_detail(response: httpx.Response, routing_key: str) -> str:
    """Quote PagerDuty's ``message`` and ``errors`` from a 400 response.

    The routing key is masked, since a 400 may quote the event sent.
    """
    try:
        answer = response.json()
    except ValueError:
        return response_detail(response, [routing_key])
    if not isinstance(answer, dict):
        return response_detail(response, [routing_key])
    parts = [str(answer.get("message") or "")]
    errors = answer.get("errors")
    if isinstance(errors, list):
        parts.extend(str(error) for error in errors)
    text = "; ".join(part for part in parts if part)
    text = mask_request_secrets(scrub(text), response.request, [routing_key])
    return f": {truncate(text, 500)}" if text else ""
