"""A fake PagerDuty Events API v2 (``POST /v2/enqueue``) on 127.0.0.1.

It checks events as PagerDuty documents them and responds with the same
shapes: 202 ``{"status": "success", "message": "Event processed",
"dedup_key": ...}``, 400 ``{"status": "invalid event", "message": ...,
"errors": [...]}``. It is stricter than PagerDuty in one place: a summary
over 1024 characters is rejected rather than truncated, so that a bridge
that does not truncate fails its tests.

    pagerduty = PagerDutyFake()
    with pagerduty:
        ...post to pagerduty.events_url...
        pagerduty.fail_next(status=429)
    pagerduty.events                   # accepted event bodies, in order
    pagerduty.alert_status(dedup_key)  # "triggered", "resolved" or None
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from fakes.server import FakeServer, RecordedRequest, Response

ROUTING_KEY_LENGTH = 32
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
SEVERITIES = ("critical", "error", "warning", "info")
ACTIONS = ("trigger", "acknowledge", "resolve")


class PagerDutyFake(FakeServer):
    """Fake Events API v2; see the module docstring."""

    def __init__(self, routing_keys: set[str] | None = None) -> None:
        super().__init__()
        # None accepts every well-formed key; a set accepts only those.
        self.routing_keys = routing_keys
        self._events: list[dict[str, Any]] = []
        self._alerts: dict[str, str] = {}
        self._events_lock = threading.Lock()

    @property
    def events_url(self) -> str:
        """The enqueue URL, as in ``https://events.pagerduty.com/v2/enqueue``."""
        return f"{self.url}/v2/enqueue"

    @property
    def events(self) -> list[dict[str, Any]]:
        """Accepted event bodies, oldest first."""
        with self._events_lock:
            return list(self._events)

    def alert_status(self, dedup_key: str) -> str | None:
        """Return ``triggered``, ``acknowledged``, ``resolved`` or ``None``."""
        with self._events_lock:
            return self._alerts.get(dedup_key)

    def respond(self, request: RecordedRequest) -> Response:
        if request.path.split("?", 1)[0] != "/v2/enqueue" or request.method != "POST":
            return Response(404, {"status": "not found"})
        try:
            event = request.json()
        except ValueError:
            return _invalid(["Event object is not valid JSON"])
        if not isinstance(event, dict):
            return _invalid(["Event object must be a JSON object"])

        errors = self._errors(event)
        if errors:
            return _invalid(errors)

        action = event["event_action"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        status = {"trigger": "triggered", "acknowledge": "acknowledged"}.get(
            action, "resolved"
        )
        with self._events_lock:
            self._events.append(event)
            if action == "trigger" or dedup_key in self._alerts:
                self._alerts[dedup_key] = status
        return Response(
            202,
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
        )

    def _errors(self, event: dict[str, Any]) -> list[str]:
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != ROUTING_KEY_LENGTH:
            errors.append(
                "Length of 'routing_key' is incorrect (should be 32 characters)"
            )
        elif self.routing_keys is not None and key not in self.routing_keys:
            errors.append("Invalid routing key")

        action = event.get("event_action")
        if action not in ACTIONS:
            errors.append(
                "'event_action' is invalid (must be one of "
                "trigger, acknowledge, resolve)"
            )
        dedup_key = event.get("dedup_key")
        if dedup_key is not None and (
            not isinstance(dedup_key, str) or len(dedup_key) > MAX_DEDUP_KEY
        ):
            errors.append("'dedup_key' must be a string of at most 255 characters")
        if action in ("acknowledge", "resolve") and not dedup_key:
            errors.append("'dedup_key' is required for acknowledge and resolve")
        if action == "trigger":
            errors.extend(_payload_errors(event.get("payload")))
        return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        errors.append("'payload.summary' is missing")
    elif len(summary) > MAX_SUMMARY:
        errors.append("'payload.summary' is longer than 1024 characters")
    if not isinstance(payload.get("source"), str) or not payload["source"]:
        errors.append("'payload.source' is missing")
    if payload.get("severity") not in SEVERITIES:
        errors.append("'payload.severity' is invalid")
    return errors


def _invalid(errors: list[str]) -> Response:
    return Response(
        400,
        {
            "status": "invalid event",
            "message": "Event object is invalid",
            "errors": errors,
        },
    )
