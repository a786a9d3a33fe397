"""Vocabulary shared by every part of the bridge: levels, disks, events.

A *disk* is one filesystem of one service, identified by the labels of its
``LowDiskSpace`` alerts minus ``alertname`` and ``severity``. Its *level* is
the highest severity among those alerts that fire. A change of level is a
*transition*, and each transition becomes one *event* that every configured
integration receives once.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# Labels that name the rule or its band, not the disk.
NON_IDENTIFYING_LABELS = frozenset({"alertname", "severity"})

LOW_DISK_ALERT = "LowDiskSpace"
UNKNOWN_DISK_ALERT = "DiskSpaceUnknown"


class Level(enum.IntEnum):
    """A disk's fill level, ordered so that ``max()`` gives the worst."""

    OK = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_severity(cls, severity: str) -> Level:
        """Map an alert's ``severity`` label to a level.

        Raises:
            ValueError: the severity is neither ``warning`` nor ``critical``.
        """
        try:
            return {"warning": cls.WARNING, "critical": cls.CRITICAL}[severity]
        except KeyError:
            raise ValueError(
                f"severity {severity!r} is not 'warning' or 'critical'"
            ) from None


class EventType(enum.StrEnum):
    """The kind of notification an event becomes."""

    WARNING = "warning"
    CRITICAL = "critical"
    # Critical back to warning: the disk is still low, but less so.
    DEESCALATION = "deescalation"
    ALL_CLEAR = "all_clear"

    @classmethod
    def for_transition(cls, previous: Level, level: Level) -> EventType:
        """Name the event for a change of level; ``previous != level``."""
        if level is Level.OK:
            return cls.ALL_CLEAR
        if level is Level.CRITICAL:
            return cls.CRITICAL
        if previous is Level.CRITICAL:
            return cls.DEESCALATION
        return cls.WARNING


@dataclass(frozen=True)
class DiskKey:
    """A disk's identity: its alert labels without alertname and severity."""

    labels: tuple[tuple[str, str], ...]

    @classmethod
    def from_alert_labels(cls, labels: Mapping[str, str]) -> DiskKey:
        kept = (
            (name, value)
            for name, value in labels.items()
            if name not in NON_IDENTIFYING_LABELS
        )
        return cls(tuple(sorted(kept)))

    # Cached because one message asks for the id of each disk several times
    # (grouping, the store's lookup, the events): a quarter of the time a
    # 10,000-alert message spent in the store went to recomputing it.
    @functools.cached_property
    def id(self) -> str:
        """Stable 32-hex-digit digest of the labels, safe in URLs and dedup keys."""
        canonical = json.dumps(self.labels, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def as_dict(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class Thresholds:
    """Percent thresholds that the rules applied, as the alert annotations state."""

    warning_percent: float = 20.0
    critical_percent: float = 10.0


@dataclass(frozen=True)
class Event:
    """One notification-worthy change of a disk's level.

    ``id`` is stable across retries and restarts: receivers deduplicate by it.
    ``free_percent`` is the value that made the alert fire, as the rule's
    ``free_percent`` annotation states it; it is ``None`` for an all-clear,
    because a resolved alert carries the stale annotations of its last
    firing evaluation, and for a de-escalation whose message did not carry
    the warning alert. ``description`` is ``None`` in the same cases,
    because the rules quote the value in it.
    """

    id: str
    type: EventType
    disk: DiskKey
    level: Level
    previous_level: Level
    occurred_at: datetime
    free_percent: str | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    summary: str | None = None
    description: str | None = None
    runbook_url: str | None = None
    generator_url: str | None = None
    external_url: str | None = None
    test: bool = False
