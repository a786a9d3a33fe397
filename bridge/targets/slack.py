"""``health.slack``: one message per event through ``chat.postMessage``.

The first message of an incident (a warning or critical from ok) opens a
thread; its ``ts`` is returned as `Delivered.thread_ref`. Every later
message of the incident (escalation, de-escalation, all-clear) is posted in
that thread with ``reply_broadcast`` so that it also shows in the channel.

Escaping: ``&``, ``<`` and ``>`` are control characters for Slack and
are sent as entities everywhere, which also disarms ``<!channel>`` in a
label. Label and annotation text goes only into ``plain_text`` objects,
and the fallback ``text`` is sent with ``mrkdwn: false``, so ``*``, ``_``,
``~`` and backticks in labels are shown as typed. Only the links line uses
markup, with ``|``, ``<`` and ``>`` percent-encoded in its URLs.

Errors: Slack returns most failures as HTTP 200 with ``ok: false``.
``ratelimited`` (also as HTTP 429) and Slack's own server errors are
retried. Every other error code is final, the listed ones and unknown ones
alike: an unknown code most often means a request or configuration that
will not start working by itself, and a dead letter shows the code to an
operator at once, where retries would hide it until they give up.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from bridge.integrations import SLACK
from bridge.model import Event, EventType, Level
from bridge.targets.base import Delivered, Failed, Outcome, Problem, Retry, SendContext
from bridge.targets.common import (
    EVENT_TITLES,
    MASK,
    MIN_MASKED_CHARS,
    USER_AGENT,
    absolute_http_url,
    disk_name,
    free_percent,
    headline,
    make_test_event,
    retry_after_seconds,
    status_outcome,
    thresholds_text,
    transport_retry,
)
from bridge.text import (
    escape_slack,
    json_bytes,
    limit_items,
    scrub,
    truncate,
    truncate_escaped,
)

# Slack Block Kit limits (Block Kit reference, header and section blocks):
# header text 150 characters, section text 3000,
# each field 2000, at most 10 fields per section.
MAX_HEADER_CHARS = 150
MAX_SECTION_CHARS = 3000
MAX_FIELD_CHARS = 2000
MAX_FIELDS = 10
# chat.postMessage truncates ``text`` at 40,000 characters; a fallback is
# a notification preview, so it is kept far shorter.
MAX_FALLBACK_CHARS = 3000
# Labels besides the ones shown as fields: how many, and how long each.
MAX_OTHER_LABELS = 20
MAX_LABEL_CHARS = 200

EMOJI = {
    EventType.WARNING: ":warning:",
    EventType.CRITICAL: ":red_circle:",
    EventType.DEESCALATION: ":large_yellow_circle:",
    EventType.ALL_CLEAR: ":white_check_mark:",
}
# Slack's own server errors (listed for chat.postMessage), worth retrying.
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "service_unavailable",
        "fatal_error",
        "internal_error",
        "request_timeout",
    }
)
TOKEN_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
    }
)
CHANNEL_ERRORS = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}
)
LABEL_FIELDS = (
    ("project", "Project"),
    ("environment", "Environment"),
    ("service", "Service"),
    ("mountpoint", "Mount point"),
    ("instance", "Instance"),
)


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate_escaped(text, limit), "emoji": True}


def _link(url: str, label: str) -> str:
    # Inside <url|label> a "|" or ">" would end the URL early; both are
    # percent-encoded, and "&" becomes an entity like all text.
    safe = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{escape_slack(safe)}|{label}>"


def build_message(event: Event, channel: str, thread_ts: str | None) -> dict[str, Any]:
    """Build the chat.postMessage body for one event."""
    labels = {scrub(name): scrub(value) for name, value in event.disk.labels}
    prefix = "[TEST] " if event.test else ""
    title = f"{EMOJI[event.type]} {prefix}{EVENT_TITLES[event.type]}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(title, MAX_HEADER_CHARS)},
        {"type": "section", "text": _plain(disk_name(labels), MAX_SECTION_CHARS)},
    ]

    percent = free_percent(event)
    if event.type is EventType.ALL_CLEAR:
        space = f"above {event.thresholds.warning_percent:g}% again"
    else:
        space = f"{percent:.2f}%" if percent is not None else "unknown"
    fields = [
        _plain(f"Free space\n{space}", MAX_FIELD_CHARS),
        _plain(f"Thresholds\n{thresholds_text(event)}", MAX_FIELD_CHARS),
    ]
    for name, heading in LABEL_FIELDS:
        if name in labels:
            fields.append(_plain(f"{heading}\n{labels[name]}", MAX_FIELD_CHARS))
    blocks.append({"type": "section", "fields": fields[:MAX_FIELDS]})

    shown = {name for name, _ in LABEL_FIELDS}
    # Each value is cut on its own, so one huge label cannot hide the rest.
    others = [
        f"{name}={truncate(value, MAX_LABEL_CHARS)}"
        for name, value in labels.items()
        if name not in shown
    ]
    if others:
        shown_labels = limit_items(others, MAX_OTHER_LABELS, "labels")
        text = "Labels: " + ", ".join(shown_labels)
        blocks.append({"type": "section", "text": _plain(text, MAX_SECTION_CHARS)})
    for annotation in (event.summary, event.description):
        if annotation:
            blocks.append(
                {"type": "section", "text": _plain(annotation, MAX_SECTION_CHARS)}
            )

    links = [
        _link(url, label)
        for url, label in (
            (absolute_http_url(event.runbook_url), "Runbook"),
            (absolute_http_url(event.generator_url), "Alert source"),
            (absolute_http_url(event.external_url), "Alertmanager"),
        )
        if url
    ]
    if links:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": " · ".join(links)}],
            }
        )

    message: dict[str, Any] = {
        "channel": channel,
        "text": truncate_escaped(headline(event), MAX_FALLBACK_CHARS),
        "mrkdwn": False,
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if thread_ts:
        message["thread_ts"] = thread_ts
        message["reply_broadcast"] = True
    return message


class SlackTarget:
    """Posts events to a Slack channel with a bot or user token."""

    type: ClassVar[str] = SLACK

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url.rstrip("/")

    async def send(self, event: Event, context: SendContext) -> Outcome:
        """Post one event; return the incident's thread ``ts`` when delivered."""
        integration = context.integration
        # A change from ok always starts a new incident, even if a stale
        # thread_ref from an earlier one is passed in.
        opens_incident = context.thread_ref is None or event.previous_level is Level.OK
        thread_ts = None if opens_incident else context.thread_ref
        channel = integration.settings.get("channel")
        if not channel:
            return Failed("the integration has no channel")
        message = build_message(event, channel, thread_ts)

        result = await self._call(context, "chat.postMessage", message)
        if not isinstance(result, dict):
            return result
        if result.get("ok") is True:
            ts = result.get("ts")
            opener = (
                ts if opens_incident and isinstance(ts, str) else context.thread_ref
            )
            return Delivered(thread_ref=opener)
        return _error_outcome(_error_code(result, integration.secrets))

    async def check(self, context: SendContext) -> list[Problem]:
        """Check the token with ``auth.test``, then post a message marked as a test."""
        auth = await self._call(context, "auth.test", {})
        if not isinstance(auth, dict):
            reason = f"Slack could not check the token: {auth.reason}"
            return [Problem("integration", reason)]
        if auth.get("ok") is not True:
            error = _error_code(auth, context.integration.secrets)
            return [Problem("token", f"Slack rejected the token: {error}")]

        outcome = await self.send(make_test_event(), context)
        if isinstance(outcome, Delivered):
            return []
        field = "channel"
        if any(error in outcome.reason for error in TOKEN_ERRORS):
            field = "token"
        return [Problem(field, outcome.reason)]

    async def _call(
        self, context: SendContext, method: str, body: dict[str, Any]
    ) -> dict[str, Any] | Outcome:
        """Call a Web API method; return its JSON object or a final outcome."""
        token = context.integration.secrets.get("token", "")
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
        }
        try:
            response = await context.client.post(
                f"{self.api_url}/{method}",
                content=json_bytes(body),
                headers=headers,
                follow_redirects=False,
            )
        except httpx.HTTPError as error:
            return transport_retry(error, "Slack")

        if response.status_code == 429:
            return Retry(
                "Slack rate limit: ratelimited", after=retry_after_seconds(response)
            )
        outcome = status_outcome(response, "Slack")
        if outcome is not None:
            return outcome
        try:
            result = response.json()
        except ValueError:
            return Retry(f"Slack answered HTTP {response.status_code} without JSON")
        if not isinstance(result, dict):
            return Retry("Slack answered with JSON that is not an object")
        if result.get("ok") is not True and result.get("error") == "ratelimited":
            # The same limit as HTTP 429, sent in a 200 body; a Retry-After
            # header counts here too.
            return Retry(
                "Slack rate limit: ratelimited", after=retry_after_seconds(response)
            )
        return result


def _error_code(result: dict[str, Any], secrets: dict[str, str]) -> str:
    """Return the ``error`` of a failed call, with the token masked.

    Slack sends a short code here, but another server at the API URL may
    quote the request's token.
    """
    error = str(result.get("error", "unknown_error"))
    token = secrets.get("token", "")
    if len(token) >= MIN_MASKED_CHARS:
        error = error.replace(token, MASK)
    return truncate(scrub(error), 100)


def _error_outcome(error: str) -> Outcome:
    if error in TRANSIENT_ERRORS:
        return Retry(f"Slack could not post the message: {error}")
    if error in TOKEN_ERRORS:
        return Failed(f"Slack rejected the token: {error}")
    if error in CHANNEL_ERRORS:
        return Failed(f"Slack could not post to the channel: {error}")
    return Failed(f"Slack rejected the message: {error}")
