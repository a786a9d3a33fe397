"""Parse Alertmanager webhook messages (payload version "4").

Fields are read by key and unknown or newer fields are ignored, because
newer Alertmanager releases add keys such as ``notification_reason`` and
``routeLabels``. Timestamps are Go's RFC 3339 output, which carries up to
nine fractional digits; Python 3.11's ``datetime.fromisoformat`` accepts
only six, so `parse_rfc3339` is written here. A firing alert's ``endsAt``
is Go's zero time ``0001-01-01T00:00:00Z`` and becomes ``None``.

Every problem raises `PayloadError` with the path of the value at fault.
Strings pass through `bridge.text.scrub`: a JSON ``\\ud800`` escape can
produce a lone surrogate, which no UTF-8 encoder accepts, so it becomes
U+FFFD here rather than failing every later step.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from bridge.errors import PayloadError
from bridge.text import scrub

FIRING = "firing"
RESOLVED = "resolved"
_STATUSES = (FIRING, RESOLVED)

# Values quoted back in error messages are cut to this many characters.
_MAX_QUOTED = 64

# re.ASCII, because \d alone also matches digits of other scripts ("٢").
_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt ]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})"
    r"(?:\.(?P<fraction>\d{1,9}))?"
    r"(?P<offset>[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_DATE_TIME_PARTS = ("year", "month", "day", "hour", "minute", "second")
# Go's zero time.Time, which Alertmanager sends as a firing alert's endsAt.
_GO_ZERO = (1, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Alert:
    """One alert of a message, as Alertmanager last saw it."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    # None for Go's zero time, which firing alerts carry.
    ends_at: datetime | None
    generator_url: str = ""
    fingerprint: str = ""

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


@dataclass(frozen=True)
class Message:
    """One webhook notification: a group of alerts sent to one receiver."""

    alerts: tuple[Alert, ...]
    receiver: str = ""
    status: str = ""
    group_key: str = ""
    external_url: str = ""
    version: str = ""
    truncated_alerts: int = 0
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)


def _quote(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_QUOTED:
        return text[:_MAX_QUOTED] + "..."
    return text


def parse_rfc3339(text: str) -> datetime | None:
    """Parse an RFC 3339 timestamp with 0 to 9 fractional digits, in UTC.

    Returns ``None`` for Go's zero time. Digits beyond microseconds are
    dropped, because `datetime` holds no finer unit.

    Raises:
        ValueError: the text is not an RFC 3339 date-time, or names a date or
            time that does not exist.
    """
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError("is not an RFC 3339 timestamp")

    parts = {name: int(match[name]) for name in _DATE_TIME_PARTS}
    microsecond = int((match["fraction"] or "").ljust(6, "0")[:6])
    offset = match["offset"]
    offset_delta = timedelta(0)
    if offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        offset_delta = sign * timedelta(
            hours=int(offset[1:3]), minutes=int(offset[4:6])
        )

    if tuple(parts.values()) == _GO_ZERO and not microsecond and not offset_delta:
        return None
    try:
        stamp = datetime(
            **parts, microsecond=microsecond, tzinfo=timezone(offset_delta)
        )
        return stamp.astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"is not a valid date and time ({exc})") from None
    except OverflowError:
        raise ValueError("is outside the years 1 to 9999") from None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # A JSON object with a key twice is ambiguous: parsers keep either
            # value. Alertmanager never sends one.
            raise PayloadError("", f"duplicate key {_quote(key)} in a JSON object", 400)
        result[key] = value
    return result


def decode_body(body: bytes) -> Any:
    """Decode a request body as UTF-8 JSON.

    Raises:
        PayloadError: status 400 for invalid UTF-8, invalid or too deeply
            nested JSON, or a duplicated key.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(
            "", f"body is not valid UTF-8 (byte {exc.start})", 400
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            "",
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno}",
            400,
        ) from None
    except RecursionError:
        raise PayloadError("", "body is nested too deeply to parse", 400) from None


def parse_message(body: bytes) -> Message:
    """Parse a webhook body into a `Message`.

    Raises:
        PayloadError: status 400 when the body is not JSON, 422 when the JSON
            is not a webhook message; ``field`` names the value at fault.
    """
    document = decode_body(body)
    if not isinstance(document, dict):
        raise PayloadError("", "body must be a JSON object")

    alerts_value = document.get("alerts")
    if not isinstance(alerts_value, list):
        problem = "is missing" if alerts_value is None else "must be a list"
        raise PayloadError("alerts", problem)
    alerts = tuple(
        _parse_alert(item, f"alerts[{index}]")
        for index, item in enumerate(alerts_value)
    )

    truncated = document.get("truncatedAlerts", 0)
    if isinstance(truncated, bool) or not isinstance(truncated, int):
        raise PayloadError("truncatedAlerts", "must be an integer")

    return Message(
        alerts=alerts,
        receiver=_optional_str(document, "receiver", ""),
        status=_optional_str(document, "status", ""),
        group_key=_optional_str(document, "groupKey", ""),
        external_url=_optional_str(document, "externalURL", ""),
        version=_optional_str(document, "version", ""),
        truncated_alerts=truncated,
        group_labels=_string_map(document, "groupLabels", ""),
        common_labels=_string_map(document, "commonLabels", ""),
        common_annotations=_string_map(document, "commonAnnotations", ""),
    )


def _parse_alert(item: object, path: str) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError(path, "must be a JSON object")

    status = item.get("status")
    if status not in _STATUSES:
        problem = "is missing" if status is None else f"is {_quote(status)}"
        raise PayloadError(
            f"{path}.status", f"{problem}; expected 'firing' or 'resolved'"
        )

    if "labels" not in item:
        raise PayloadError(f"{path}.labels", "is missing")
    if item["labels"] is None:
        # Annotations may be null, as Go's encoding/json writes a nil map,
        # but an alert without labels names no disk.
        raise PayloadError(
            f"{path}.labels", "must be a JSON object of strings, not null"
        )
    labels = _string_map(item, "labels", path)
    starts_at = _timestamp(item, "startsAt", path, required=True)
    if starts_at is None:
        raise PayloadError(f"{path}.startsAt", "must not be the zero time")
    ends_at = _timestamp(item, "endsAt", path, required=False)

    return Alert(
        status=status,
        labels=labels,
        annotations=_string_map(item, "annotations", path),
        starts_at=starts_at,
        ends_at=ends_at,
        generator_url=_optional_str(item, "generatorURL", "", path),
        fingerprint=_optional_str(item, "fingerprint", "", path),
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _optional_str(
    document: Mapping[str, Any], key: str, default: str, path: str = ""
) -> str:
    value = document.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise PayloadError(_join(path, key), f"must be a string, not {_quote(value)}")
    return scrub(value)


def _string_map(document: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    value = document.get(key)
    if value is None:
        return {}
    where = _join(path, key)
    if not isinstance(value, dict):
        raise PayloadError(where, "must be a JSON object of strings")
    for name, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(
                f"{where}.{scrub(name)}", f"must be a string, not {_quote(item)}"
            )
    return {scrub(name): scrub(item) for name, item in value.items()}


def _timestamp(
    document: Mapping[str, Any], key: str, path: str, *, required: bool
) -> datetime | None:
    where = _join(path, key)
    value = document.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(where, "is missing")
        return None
    if not isinstance(value, str):
        raise PayloadError(where, f"must be an RFC 3339 string, not {_quote(value)}")
    try:
        return parse_rfc3339(value)
    except ValueError as exc:
        raise PayloadError(where, f"{_quote(value)} {exc}") from None
