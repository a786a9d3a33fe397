"""The per-disk state machine: which alerts change a disk's level.

This module is pure: it reads a disk's stored state and the alerts of one
message, and returns the new state and at most one event. The store runs it
inside the transaction that saves its result.

Rules, each decided per alert and never from the message's top-level status:

- Only ``LowDiskSpace`` alerts with severity ``warning`` or ``critical`` set
  the level: the highest severity that fires, else ok.
- For each severity the state keeps the latest alert seen, firing or
  resolved, with its ``startsAt`` and ``endsAt``. A firing alert counts
  after a stored resolve only if it started after that resolve's
  ``endsAt``. A resolve counts after a stored firing alert unless it ended
  before that alert started. So HA duplicates, repeats, retries and
  out-of-order messages change nothing, even when the two Alertmanagers of
  an HA pair report one firing period with different ``startsAt``.
- While a ``DiskSpaceUnknown`` alert fires for the disk, the level can rise
  but not fall: a LowDiskSpace alert that resolved because its data stopped
  arriving does not prove the disk healthy. When the unknown alert resolves,
  the level is recomputed from the stored alerts.
- A change of level produces one event; no change produces none, so a
  resolve for a disk never seen firing notifies nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bridge.alertmanager import FIRING, Alert
from bridge.model import (
    LOW_DISK_ALERT,
    UNKNOWN_DISK_ALERT,
    DiskKey,
    Event,
    EventType,
    Level,
    Thresholds,
)

_SEVERITIES = {"warning": Level.WARNING, "critical": Level.CRITICAL}
# The key under which the unknown alert's status is kept beside the severities.
_UNKNOWN = "unknown"


@dataclass(frozen=True)
class AlertRecord:
    """The latest alert seen for one severity of one disk."""

    status: str
    starts_at: datetime
    ends_at: datetime | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""

    @property
    def firing(self) -> bool:
        return self.status == FIRING

    @classmethod
    def from_alert(cls, alert: Alert) -> AlertRecord:
        return cls(
            status=alert.status,
            starts_at=alert.starts_at,
            ends_at=None if alert.firing else alert.ends_at,
            annotations=dict(alert.annotations),
            generator_url=alert.generator_url,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "annotations": dict(self.annotations),
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertRecord:
        ends_at = data.get("ends_at")
        return cls(
            status=data["status"],
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=datetime.fromisoformat(ends_at) if ends_at else None,
            annotations=dict(data.get("annotations", {})),
            generator_url=data.get("generator_url", ""),
        )


@dataclass(frozen=True)
class DiskState:
    """The state the bridge keeps for one disk between messages.

    ``alerts`` maps ``"warning"``, ``"critical"`` and ``"unknown"`` to the
    latest alert of that kind. ``incident_started_at`` is the ``startsAt`` of
    the alert that took the disk from ok to a low level; it is ``None``
    while the disk is ok.
    """

    disk: DiskKey
    level: Level = Level.OK
    alerts: Mapping[str, AlertRecord] = field(default_factory=dict)
    incident_started_at: datetime | None = None

    @property
    def disk_id(self) -> str:
        return self.disk.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": [list(pair) for pair in self.disk.labels],
            "level": self.level.label,
            "alerts": {kind: record.to_dict() for kind, record in self.alerts.items()},
            "incident_started_at": (
                self.incident_started_at.isoformat()
                if self.incident_started_at
                else None
            ),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiskState:
        started = data.get("incident_started_at")
        return cls(
            disk=DiskKey(tuple((name, value) for name, value in data["labels"])),
            level=Level[data["level"].upper()],
            alerts={
                kind: AlertRecord.from_dict(record)
                for kind, record in data.get("alerts", {}).items()
            },
            incident_started_at=datetime.fromisoformat(started) if started else None,
        )


@dataclass(frozen=True)
class Change:
    """The result of applying alerts to one disk.

    ``state`` is ``None`` when nothing needs saving; ``event`` is ``None``
    when the level did not change.
    """

    state: DiskState | None
    event: Event | None = None


def alert_kind(alert: Alert) -> str | None:
    """Return the state key an alert updates, or ``None`` if it is not ours."""
    if alert.name == UNKNOWN_DISK_ALERT:
        return _UNKNOWN
    if alert.name == LOW_DISK_ALERT and alert.labels.get("severity") in _SEVERITIES:
        return alert.labels["severity"]
    return None


def group_by_disk(alerts: Iterable[Alert]) -> dict[DiskKey, list[Alert]]:
    """Group the alerts this module acts on by disk, keeping message order."""
    groups: dict[DiskKey, list[Alert]] = {}
    for alert in alerts:
        if alert_kind(alert) is None:
            continue
        groups.setdefault(DiskKey.from_alert_labels(alert.labels), []).append(alert)
    return groups


def _supersedes(alert: Alert, stored: AlertRecord | None) -> bool:
    """Tell whether an alert is newer information than the stored record.

    A ``startsAt`` alone does not name a firing period. Alertmanager keeps
    the earliest ``startsAt`` when it merges updates of an alert
    (``types.Alert.Merge``), so the two members of an HA pair can report one
    period with different ones. Instead, a period ends at its ``endsAt``,
    and a new period starts only after the previous one ended.
    """
    if stored is None:
        return True
    stored_end = stored.ends_at or stored.starts_at
    if alert.firing:
        if stored.firing:
            # A repeat refreshes the annotations (the latest free_percent);
            # an earlier startsAt is an older or merged view of the period.
            return alert.starts_at >= stored.starts_at
        # Starting no later than the stored resolve ended, this alert is a
        # retry, a duplicate or a peer's late view of the period that ended.
        # NOTE: a firing that comes back with the startsAt of a period that
        # Alertmanager already resolved by timeout is ignored here until it
        # resolves. Whether a restarted Prometheus that restores `for` state
        # sends such a startsAt has not been checked.
        return alert.starts_at > stored_end
    alert_end = alert.ends_at or alert.starts_at
    if stored.firing:
        # A resolve that ended before the stored period started is stale.
        return alert_end >= stored.starts_at
    return (alert_end, alert.starts_at) >= (stored_end, stored.starts_at)


def _level_of(alerts: Mapping[str, AlertRecord]) -> Level:
    firing = [
        _SEVERITIES[kind]
        for kind, rec in alerts.items()
        if kind in _SEVERITIES and rec.firing
    ]
    return max(firing, default=Level.OK)


def apply_alerts(
    disk: DiskKey,
    current: DiskState | None,
    alerts: Iterable[Alert],
    *,
    now: datetime,
    new_event_id: Callable[[], str],
    external_url: str = "",
) -> Change:
    """Apply one message's alerts for one disk to its stored state.

    Args:
        disk: the disk all ``alerts`` belong to.
        current: the stored state, or ``None`` for a disk never seen.
        alerts: the disk's alerts in message order.
        now: the time recorded as the event's ``occurred_at``.
        new_event_id: called once when a transition needs an event id.
        external_url: Alertmanager's ``externalURL``, copied into the event.
    """
    state = current or DiskState(disk=disk)
    records = dict(state.alerts)
    changed = False
    fresh: set[str] = set()
    for alert in alerts:
        kind = alert_kind(alert)
        if kind is None or not _supersedes(alert, records.get(kind)):
            continue
        fresh.add(kind)
        record = AlertRecord.from_alert(alert)
        if records.get(kind) != record:
            records[kind] = record
            changed = True
    if not changed:
        return Change(state=None)

    level = _level_of(records)
    unknown = records.get(_UNKNOWN)
    if unknown is not None and unknown.firing and level < state.level:
        level = state.level

    new_state = replace(state, alerts=records, level=level)
    if level == state.level:
        return Change(state=new_state)

    event, started = _event_for(
        state, level, records, fresh, now, new_event_id, external_url
    )
    return Change(state=replace(new_state, incident_started_at=started), event=event)


def _event_for(
    state: DiskState,
    level: Level,
    records: Mapping[str, AlertRecord],
    fresh: Collection[str],
    now: datetime,
    new_event_id: Callable[[], str],
    external_url: str,
) -> tuple[Event, datetime | None]:
    """Build the event of a transition and the incident start that follows it.

    ``fresh`` names the kinds of alert that this message updated. Only their
    annotations are current, so ``free_percent`` and the description, which
    quotes the value, come from them alone. A resolve carries the
    annotations of its last firing, and the warning that a de-escalation
    falls back to may have been sent last while the disk was critical.
    """
    value_is_current = level is not Level.OK and level.label in fresh
    if level is Level.OK:
        # The all-clear describes the incident that ends: the annotations of
        # its last firing alert, without the values that are stale now.
        source = records.get(state.level.label) or _worst_record(records)
        ends = [
            rec.ends_at
            for kind, rec in records.items()
            if kind in _SEVERITIES and rec.ends_at
        ]
        started = state.incident_started_at
        free_percent = None
        ends_at = max(ends, default=None)
        next_started = None
    else:
        source = records[level.label]
        started = state.incident_started_at or source.starts_at
        free_percent = (
            source.annotations.get("free_percent") if value_is_current else None
        )
        ends_at = None
        next_started = started

    annotations = source.annotations if source else {}
    event = Event(
        id=new_event_id(),
        type=EventType.for_transition(state.level, level),
        disk=state.disk,
        level=level,
        previous_level=state.level,
        occurred_at=now,
        free_percent=free_percent,
        thresholds=thresholds_from(annotations),
        starts_at=started,
        ends_at=ends_at,
        summary=annotations.get("summary"),
        description=annotations.get("description") if value_is_current else None,
        runbook_url=annotations.get("runbook_url"),
        generator_url=(source.generator_url if source else "") or None,
        external_url=external_url or None,
    )
    return event, next_started


def _worst_record(records: Mapping[str, AlertRecord]) -> AlertRecord | None:
    """Return the record of the highest severity seen, for an all-clear's text."""
    for kind in ("critical", "warning"):
        if kind in records:
            return records[kind]
    return None


def thresholds_from(annotations: Mapping[str, str]) -> Thresholds:
    """Read the rule's thresholds from annotations, falling back to 20 and 10."""
    default = Thresholds()
    return Thresholds(
        warning_percent=_percent(
            annotations.get("warning_threshold"), default.warning_percent
        ),
        critical_percent=_percent(
            annotations.get("critical_threshold"), default.critical_percent
        ),
    )


def _percent(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        return default
    if not math.isfinite(value) or not 0 <= value <= 100:
        return default
    return value
