"""What the three targets share: HTTP outcome rules and event wording.

HTTP rules, the same for every target unless its API documents others:
2xx is delivered. 408, 429 and 5xx are retried, honouring ``Retry-After``
(RFC 9110 section 10.2.3, seconds or an HTTP date). A network error or a
timeout is retried. Any other status is final.

Reasons never quote a URL or a response header, since a webhook URL or a
proxy's answer can contain a secret; they name the status, the error type
or the target's own error code. A response body quoted in a reason is
masked first (`mask_request_secrets`), because receivers echo the request:
a 404 page naming the path, where a webhook URL often keeps its token, or a
400 that quotes the body with the routing key.
"""

from __future__ import annotations

import email.utils
import math
import ssl
import urllib.parse
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx

from bridge.http import InvalidResponse
from bridge.model import DiskKey, Event, EventType, Level
from bridge.targets.base import Failed, Outcome, Retry
from bridge.text import scrub, truncate

USER_AGENT = "webpaas-health-bridge/0.1"
# Maximum length of response text quoted in a reason.
MAX_REASON_DETAIL = 300
MASK = "***"
# Parts of a request shorter than this are not masked: a path such as "/"
# or a query value such as "1" would mask unrelated text and hide nothing.
MIN_MASKED_CHARS = 4

EVENT_TITLES = {
    EventType.WARNING: "Low disk space: warning",
    EventType.CRITICAL: "Low disk space: critical",
    EventType.DEESCALATION: "Low disk space: back to warning from critical",
    EventType.ALL_CLEAR: "Disk space all clear",
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse ``Retry-After`` as seconds from now, or ``None`` if absent or invalid."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def status_outcome(response: httpx.Response, target: str) -> Outcome | None:
    """Classify a non-2xx status; return ``None`` for 2xx (the caller decides)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    if status in (408, 429) or status >= 500:
        return Retry(
            f"{target} answered HTTP {status}", after=retry_after_seconds(response)
        )
    if 300 <= status < 400:
        return Failed(
            f"{target} answered HTTP {status}, a redirect; redirects are not "
            "followed, so configure the final URL"
        )
    return Failed(f"{target} answered HTTP {status}{response_detail(response)}")


def response_detail(response: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """Return ``": <start of the body>"`` for a reason, or ``""``.

    The body is masked with `mask_request_secrets` and ``secrets``.
    """
    text = scrub(response.text.strip()) if response.content else ""
    text = mask_request_secrets(text, response.request, secrets)
    if not text:
        return ""
    return ": " + truncate(" ".join(text.split()), MAX_REASON_DETAIL)


def mask_request_secrets(
    text: str, request: httpx.Request, secrets: Iterable[str] = ()
) -> str:
    """Replace what the request carried that may be secret with `MASK`.

    Masked: the URL's path and query, each query value, the userinfo, the
    ``Authorization`` header and its credentials, and ``secrets``, each in
    its raw and its percent-decoded form.
    """
    url = request.url
    candidates = [
        url.raw_path.decode("ascii", "replace"),
        url.path,
        url.query.decode("ascii", "replace"),
        url.userinfo.decode("ascii", "replace"),
        url.password or "",
        *(value for _, value in url.params.multi_items()),
        *secrets,
    ]
    authorization = request.headers.get("authorization", "")
    candidates += [authorization, *authorization.split(" ", 1)[1:]]
    decoded = [urllib.parse.unquote(value) for value in candidates]
    for secret in sorted({*candidates, *decoded}, key=len, reverse=True):
        if len(secret) >= MIN_MASKED_CHARS:
            text = text.replace(secret, MASK)
    return text


def transport_retry(error: httpx.HTTPError, target: str) -> Retry:
    """Turn a network error or timeout into a retry, naming only its type.

    A certificate that does not verify is named as such, with OpenSSL's
    verify message (such as "self-signed certificate"), which quotes no URL.
    """
    if isinstance(error, httpx.TimeoutException):
        return Retry(f"{target} did not answer in time ({type(error).__name__})")
    if isinstance(error, InvalidResponse):
        # Such as body bytes after a 204 (RFC 9110, section 15.3.5).
        return Retry(f"{target} sent a response that is not valid HTTP/1.1")
    certificate = _certificate_error(error)
    if certificate is not None:
        detail = getattr(certificate, "verify_message", None) or "verification failed"
        return Retry(f"the TLS certificate of {target} did not verify: {detail}")
    return Retry(f"could not reach {target} ({type(error).__name__})")


def _certificate_error(error: BaseException) -> ssl.SSLCertVerificationError | None:
    # httpx's error wraps the transport's, which wraps the ssl module's.
    # aiohttp's certificate error is itself an SSLCertVerificationError but
    # carries no verify message, so the innermost one in the chain wins.
    found = None
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            found = cause
        cause = cause.__cause__ or cause.__context__
    return found


def iso(moment: datetime | None) -> str | None:
    """Format a timestamp as RFC 3339 in UTC, or pass ``None`` through."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def free_percent(event: Event) -> float | None:
    """Return the free percentage as a number, if the event has a finite one."""
    if event.free_percent is None or event.type is EventType.ALL_CLEAR:
        return None
    try:
        value = float(event.free_percent)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def disk_name(labels: dict[str, str]) -> str:
    """Name a disk for people: ``service /mount (project/environment)``."""
    parts = [labels.get("service", ""), labels.get("mountpoint", "")]
    name = " ".join(part for part in parts if part) or labels.get("instance", "")
    scope = "/".join(
        value for value in (labels.get("project"), labels.get("environment")) if value
    )
    name = name or "a disk"
    return f"{name} ({scope})" if scope else name


def headline(event: Event) -> str:
    """Summarize the event in one line, for summaries and fallback text."""
    labels = event.disk.as_dict()
    prefix = "[TEST] " if event.test else ""
    title = EVENT_TITLES[event.type]
    percent = free_percent(event)
    if event.type is EventType.ALL_CLEAR:
        detail = f"more than {event.thresholds.warning_percent:g}% free again"
    elif percent is not None:
        detail = f"{percent:.2f}% free"
    else:
        detail = "free space unknown"
    return scrub(f"{prefix}{title} on {disk_name(labels)}: {detail}")


def thresholds_text(event: Event) -> str:
    thresholds = event.thresholds
    return (
        f"warning below {thresholds.warning_percent:g}%, "
        f"critical below {thresholds.critical_percent:g}%"
    )


def absolute_http_url(value: str | None) -> str | None:
    """Return ``value`` if it is an absolute http(s) URL, else ``None``."""
    if not value:
        return None
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        return None
    if url.scheme not in ("http", "https") or not url.host:
        return None
    return str(url)


def make_test_event(event_type: EventType = EventType.WARNING) -> Event:
    """Build an event marked as a test, for live checks of an integration."""
    levels = {
        EventType.WARNING: (Level.OK, Level.WARNING),
        EventType.ALL_CLEAR: (Level.WARNING, Level.OK),
    }
    previous, level = levels[event_type]
    now = datetime.now(UTC)
    disk = DiskKey.from_alert_labels(
        {
            "project": "webpaas-health",
            "environment": "test",
            "service": "test-notification",
            "mountpoint": "/test",
        }
    )
    return Event(
        id=f"test-{uuid.uuid4()}",
        type=event_type,
        disk=disk,
        level=level,
        previous_level=previous,
        occurred_at=now,
        free_percent="15.00" if level is not Level.OK else None,
        starts_at=now,
        ends_at=now if level is Level.OK else None,
        summary="Test notification from webpaas-health; no disk is low.",
        test=True,
    )
