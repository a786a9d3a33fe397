"""JSON forms of events and disk states as the stores keep them.

The form is internal to the bridge: targets build their own wire formats
from `Event`, never from this.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bridge.model import DiskKey, Event, EventType, Level, Thresholds
from bridge.state import DiskState

_TIME_FIELDS = ("occurred_at", "starts_at", "ends_at")
_TEXT_FIELDS = (
    "free_percent",
    "summary",
    "description",
    "runbook_url",
    "generator_url",
    "external_url",
)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def event_to_json(event: Event) -> str:
    document: dict[str, Any] = {
        "id": event.id,
        "type": event.type.value,
        "labels": [list(pair) for pair in event.disk.labels],
        "level": event.level.label,
        "previous_level": event.previous_level.label,
        "warning_percent": event.thresholds.warning_percent,
        "critical_percent": event.thresholds.critical_percent,
        "test": event.test,
    }
    for name in _TIME_FIELDS:
        document[name] = _time(getattr(event, name))
    for name in _TEXT_FIELDS:
        document[name] = getattr(event, name)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def event_from_json(text: str) -> Event:
    document = json.loads(text)
    occurred_at = _parse_time(document["occurred_at"])
    assert occurred_at is not None
    return Event(
        id=document["id"],
        type=EventType(document["type"]),
        disk=DiskKey(tuple((name, value) for name, value in document["labels"])),
        level=Level[document["level"].upper()],
        previous_level=Level[document["previous_level"].upper()],
        occurred_at=occurred_at,
        thresholds=Thresholds(
            warning_percent=document["warning_percent"],
            critical_percent=document["critical_percent"],
        ),
        starts_at=_parse_time(document["starts_at"]),
        ends_at=_parse_time(document["ends_at"]),
        test=document.get("test", False),
        **{name: document.get(name) for name in _TEXT_FIELDS},
    )


def state_to_json(state: DiskState) -> str:
    return json.dumps(state.to_dict(), ensure_ascii=False, separators=(",", ":"))


def state_from_json(text: str) -> DiskState:
    return DiskState.from_dict(json.loads(text))
