"""``health.webhook``: a JSON POST, signed with a detached JWS when a key is set.

The body is described by ``bridge/schemas/webhook-event.schema.json`` and
``docs/formats/webhook.md``. Headers:

- ``Content-Type: application/json``
- ``X-Webpaas-Event-Id``: the event id, the same on every retry, so that
  receivers can drop duplicates.
- ``X-Webpaas-Timestamp``: Unix seconds when this attempt was sent. The
  body's ``sent_at`` contains the same instant and is covered by the
  signature, so receivers reject replays by that one.
- ``X-JWS-Signature``: with a shared key, see `bridge.jws`.

Every send checks the URL with `bridge.netguard` right before it connects,
and a plain-http send connects to the very address that was checked, so a
DNS answer that changes after validation cannot point a delivery at an
internal address (for https, certificate verification does that job).
Redirects are never followed: a 3xx is a final failure that asks for the
final URL, because a public URL could otherwise redirect to an internal one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from bridge import jws, netguard
from bridge.integrations import WEBHOOK
from bridge.model import Event, EventType
from bridge.targets.base import Delivered, Failed, Outcome, Problem, Retry, SendContext
from bridge.targets.common import (
    USER_AGENT,
    free_percent,
    headline,
    iso,
    make_test_event,
    status_outcome,
    transport_retry,
)
from bridge.text import json_bytes, scrub, truncate

EVENT_ID_HEADER = "X-Webpaas-Event-Id"
TIMESTAMP_HEADER = "X-Webpaas-Timestamp"
SCHEMA_VERSION = 1
# Free text from annotations is cut to this many characters; labels are
# sent whole, because receivers match disks by their exact labels.
MAX_ANNOTATION_CHARS = 4000
# Names of the labels that the body also states as top-level disk fields.
DISK_FIELDS = ("project", "environment", "service", "mountpoint", "instance")


def event_body(event: Event, sent_at: datetime) -> dict[str, Any]:
    """Build the JSON body for one event, as the schema describes it."""
    labels = {scrub(name): scrub(value) for name, value in event.disk.labels}
    disk: dict[str, Any] = {"id": event.disk.id}
    for name in DISK_FIELDS:
        if name in labels:
            disk[name] = labels[name]
    disk["labels"] = labels

    def annotation(value: str | None) -> str | None:
        return truncate(value, MAX_ANNOTATION_CHARS) if value is not None else None

    return {
        "version": SCHEMA_VERSION,
        "id": event.id,
        "type": event.type.value,
        "test": event.test,
        "level": event.level.label,
        "previous_level": event.previous_level.label,
        "summary": headline(event),
        "disk": disk,
        "free_percent": free_percent(event),
        "thresholds": {
            "warning_percent": event.thresholds.warning_percent,
            "critical_percent": event.thresholds.critical_percent,
        },
        "occurred_at": iso(event.occurred_at),
        "starts_at": iso(event.starts_at),
        "resolved_at": (
            iso(event.ends_at) if event.type is EventType.ALL_CLEAR else None
        ),
        "annotations": {
            "summary": annotation(event.summary),
            "description": annotation(event.description),
        },
        "links": {
            "generator_url": event.generator_url,
            "external_url": event.external_url,
            "runbook_url": event.runbook_url,
        },
        "sent_at": iso(sent_at),
    }


def build_request(
    event: Event, shared_key: str | None, sent_at: datetime
) -> tuple[bytes, dict[str, str]]:
    """Return the exact body bytes and headers of one delivery.

    Raises:
        jws.InvalidSharedKey: the shared key is not base64url.
    """
    body = json_bytes(event_body(event, sent_at))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.id,
        TIMESTAMP_HEADER: str(int(sent_at.timestamp())),
    }
    if shared_key:
        headers[jws.SIGNATURE_HEADER] = jws.sign(
            body, jws.decode_shared_key(shared_key)
        )
    return body, headers


class WebhookTarget:
    """Sends events as signed JSON POSTs to the integration's URL."""

    type: ClassVar[str] = WEBHOOK

    def __init__(
        self,
        *,
        allow_private_targets: bool = False,
        resolver: netguard.Resolver = netguard.system_resolver,
    ) -> None:
        self.allow_private_targets = allow_private_targets
        self.resolver = resolver

    async def send(self, event: Event, context: SendContext) -> Outcome:
        """POST one event and classify the response (see the module docstring)."""
        integration = context.integration
        try:
            # The guard parses the text itself, so that an address httpx
            # rejects (such as octal 0177.0.0.1) is still named as internal.
            addresses = await netguard.check_url(
                integration.settings["url"],
                allow_private=self.allow_private_targets,
                resolver=self.resolver,
            )
            url = httpx.URL(integration.settings["url"])
        except KeyError:
            return Failed("the integration has no url")
        except netguard.ResolutionFailed as error:
            return Retry(f"url: {error}")
        except (netguard.UnsafeTarget, httpx.InvalidURL) as error:
            return Failed(f"url: {error}")

        try:
            body, headers = build_request(
                event, integration.secrets.get("shared_key"), datetime.now(UTC)
            )
        except jws.InvalidSharedKey as error:
            return Failed(f"shared_key: {error}")

        headers["Host"] = _host_header(url)
        try:
            response = await context.client.post(
                _pinned(url, addresses[0]),
                content=body,
                headers=headers,
                follow_redirects=False,
            )
        except httpx.HTTPError as error:
            return transport_retry(error, "the webhook receiver")

        outcome = status_outcome(response, "the webhook receiver")
        return outcome if outcome is not None else Delivered()

    async def check(self, context: SendContext) -> list[Problem]:
        """Send a signed event marked as a test; report a failure in plain words."""
        outcome = await self.send(make_test_event(), context)
        if isinstance(outcome, Delivered):
            return []
        field = "url"
        if outcome.reason.startswith("shared_key:"):
            field = "shared_key"
        reason = outcome.reason.removeprefix(f"{field}: ")
        return [Problem(field, f"the test event was not delivered: {reason}")]


def _pinned(url: httpx.URL, address: netguard.IPAddress) -> httpx.URL:
    """Return the URL to connect to: the checked address for plain http.

    For https the name stays in the URL. Certificate verification already
    ties the connection to the name, so a DNS answer rebound to an internal
    address fails the TLS handshake. Pinning https would also be unsafe,
    because httpx pools connections by the address it dials, and a pinned
    TLS connection could later carry a request for another name.
    """
    if url.scheme == "https" or netguard.parse_host_address(url.host) is not None:
        return url
    return netguard.pinned_url(url, address)


def _host_header(url: httpx.URL) -> str:
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port is not None else host
