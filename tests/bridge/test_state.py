"""Table tests of the per-disk state machine.

Each case feeds messages (lists of alerts) one after another into
`apply_alerts` and checks the event types produced and the final level.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from bridge.alertmanager import Alert
from bridge.model import DiskKey, EventType, Level, Thresholds
from bridge.state import DiskState, apply_alerts, group_by_disk, thresholds_from

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LABELS = {"project": "shop", "service": "db", "mountpoint": "/var/lib/pg"}
DISK = DiskKey.from_alert_labels(LABELS)


def minutes(count: float) -> datetime:
    return T0 + timedelta(minutes=count)


def alert(
    severity: str,
    status: str = "firing",
    starts: float = 0,
    ends: float | None = None,
    name: str = "LowDiskSpace",
    free: str = "15.2",
    labels: dict[str, str] | None = None,
) -> Alert:
    annotations = {"free_percent": free, "summary": f"{severity} on /var/lib/pg"}
    return Alert(
        status=status,
        labels={**(labels or LABELS), "alertname": name, "severity": severity},
        annotations=annotations,
        starts_at=minutes(starts),
        ends_at=minutes(ends) if ends is not None else None,
        generator_url="http://prometheus.example/graph",
    )


def fire(severity: str, starts: float = 0, free: str = "15.2") -> Alert:
    return alert(severity, "firing", starts, free=free)


def resolve(severity: str, starts: float = 0, ends: float = 30) -> Alert:
    return alert(severity, "resolved", starts, ends)


def unknown(
    status: str = "firing", starts: float = 0, ends: float | None = None
) -> Alert:
    return alert("warning", status, starts, ends, name="DiskSpaceUnknown")


@dataclass
class Run:
    events: list[EventType]
    state: DiskState | None


def run(*messages: list[Alert]) -> Run:
    """Apply each message in turn, as the store would, and collect events."""
    state: DiskState | None = None
    events: list[EventType] = []
    ids = (f"event-{number}" for number in itertools.count())
    for step, message in enumerate(messages):
        change = apply_alerts(
            DISK, state, message, now=minutes(100 + step), new_event_id=ids.__next__
        )
        if change.state is not None:
            state = change.state
        if change.event is not None:
            events.append(change.event.type)
    return Run(events, state)


W, C, D, A = (
    EventType.WARNING,
    EventType.CRITICAL,
    EventType.DEESCALATION,
    EventType.ALL_CLEAR,
)

CASES = [
    # ok -> warning -> all-clear.
    (
        "warning_then_resolve",
        [[fire("warning")], [resolve("warning")]],
        [W, A],
        Level.OK,
    ),
    # ok -> critical directly.
    ("critical_from_ok", [[fire("critical")]], [C], Level.CRITICAL),
    # warning -> critical -> all-clear when both resolve together.
    (
        "escalate_then_clear",
        [
            [fire("warning")],
            [fire("warning"), fire("critical", 5)],
            [resolve("warning"), resolve("critical", 5)],
        ],
        [W, C, A],
        Level.OK,
    ),
    # Critical resolves while warning still fires: a de-escalation.
    (
        "critical_to_warning",
        [
            [fire("warning"), fire("critical", 5)],
            [fire("warning"), resolve("critical", 5)],
        ],
        [C, D],
        Level.WARNING,
    ),
    # Warning resolves while critical still fires: nothing to say.
    (
        "warning_resolves_under_critical",
        [
            [fire("warning"), fire("critical", 5)],
            [resolve("warning"), fire("critical", 5)],
        ],
        [C],
        Level.CRITICAL,
    ),
    # Both severities firing in the first message: one critical event.
    (
        "both_severities_one_message",
        [[fire("warning"), fire("critical")]],
        [C],
        Level.CRITICAL,
    ),
    # An HA pair sends every message twice.
    (
        "ha_duplicates",
        [
            [fire("warning")],
            [fire("warning")],
            [resolve("warning")],
            [resolve("warning")],
        ],
        [W, A],
        Level.OK,
    ),
    # repeat_interval repeats with a newer free_percent change nothing.
    (
        "repeats",
        [[fire("warning", free="19")], [fire("warning", free="18")], [fire("warning")]],
        [W],
        Level.WARNING,
    ),
    # Alertmanager retries an old firing message after the resolve landed.
    (
        "retry_of_old_firing",
        [[fire("warning")], [resolve("warning")], [fire("warning")]],
        [W, A],
        Level.OK,
    ),
    # The resolve arrives before the firing of the same period.
    (
        "resolve_before_fire",
        [[resolve("warning")], [fire("warning")]],
        [],
        Level.OK,
    ),
    # A resolve for a disk never seen firing.
    ("resolve_of_unknown_disk", [[resolve("critical")]], [], Level.OK),
    # Out of order: a resolve of an older period lands after a newer firing.
    (
        "old_resolve_after_new_firing",
        [[fire("warning", 60)], [resolve("warning", 0, 30)]],
        [W],
        Level.WARNING,
    ),
    # HA pair: one Alertmanager saw the period start at 5, its peer at 0
    # (Alertmanager keeps the earliest startsAt it merged); the peer's
    # resolve still ends the period.
    (
        "ha_peer_resolve_with_earlier_starts_at",
        [[fire("warning", 5)], [fire("warning", 0)], [resolve("warning", 0, 30)]],
        [W, A],
        Level.OK,
    ),
    # HA pair: the peer's late firing message, with its later startsAt,
    # arrives after the resolve and is not a new period.
    (
        "ha_peer_late_firing_after_resolve",
        [[fire("warning", 0)], [resolve("warning", 0, 30)], [fire("warning", 5)]],
        [W, A],
        Level.OK,
    ),
    # The same for critical under a firing warning: a de-escalation.
    (
        "ha_peer_critical_resolve_with_earlier_starts_at",
        [
            [fire("warning"), fire("critical", 10)],
            [fire("warning"), resolve("critical", 5, 30)],
        ],
        [C, D],
        Level.WARNING,
    ),
    # A period that starts right after the resolve ended is new.
    (
        "refire_just_after_resolve",
        [[fire("warning")], [resolve("warning", 0, 30)], [fire("warning", 30.5)]],
        [W, A, W],
        Level.WARNING,
    ),
    # A new firing period after an all-clear notifies again.
    (
        "refire_after_clear",
        [[fire("warning")], [resolve("warning")], [fire("warning", 40)]],
        [W, A, W],
        Level.WARNING,
    ),
    # One message mixes a firing and a resolved alert of the disk.
    (
        "mixed_message",
        [[fire("warning")], [resolve("warning"), fire("critical", 10)]],
        [W, C],
        Level.CRITICAL,
    ),
    # The unknown alert alone changes nothing.
    ("unknown_alone", [[unknown()]], [], Level.OK),
    # Data stops: the low alert resolves while the unknown alert fires, so
    # the disk keeps its level until the unknown alert resolves.
    (
        "unknown_holds_level",
        [[fire("warning")], [unknown(starts=20)], [resolve("warning")]],
        [W],
        Level.WARNING,
    ),
    (
        "unknown_resolve_recomputes",
        [
            [fire("warning")],
            [unknown(starts=20)],
            [resolve("warning")],
            [unknown("resolved", 20, 40)],
        ],
        [W, A],
        Level.OK,
    ),
    # While unknown, a level can still rise.
    (
        "unknown_allows_escalation",
        [[fire("warning")], [unknown(starts=20)], [fire("critical", 25)]],
        [W, C],
        Level.CRITICAL,
    ),
    # Other alert names and severities are not ours.
    (
        "foreign_alerts_ignored",
        [[alert("warning", name="HighCPU"), alert("info")]],
        [],
        Level.OK,
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected_events", "expected_level"),
    [
        pytest.param(messages, events, level, id=name)
        for name, messages, events, level in CASES
    ],
)
def test_state_machine_table(
    messages: list[list[Alert]], expected_events: list[EventType], expected_level: Level
) -> None:
    result = run(*messages)

    assert result.events == expected_events
    level = result.state.level if result.state else Level.OK
    assert level is expected_level


def test_warning_event_fields() -> None:
    change = apply_alerts(
        DISK,
        None,
        [fire("warning", free="14.5")],
        now=minutes(1),
        new_event_id=lambda: "id-1",
        external_url="http://alertmanager.example",
    )

    event = change.event
    assert event is not None
    assert event.id == "id-1"
    assert event.type is EventType.WARNING
    assert event.level is Level.WARNING
    assert event.previous_level is Level.OK
    assert event.free_percent == "14.5"
    assert event.starts_at == T0
    assert event.ends_at is None
    assert event.occurred_at == minutes(1)
    assert event.summary == "warning on /var/lib/pg"
    assert event.external_url == "http://alertmanager.example"
    assert event.generator_url == "http://prometheus.example/graph"
    assert event.disk.as_dict() == LABELS


def test_all_clear_drops_stale_free_percent() -> None:
    first = apply_alerts(
        DISK, None, [fire("warning")], now=T0, new_event_id=lambda: "a"
    )
    assert first.state is not None

    second = apply_alerts(
        DISK, first.state, [resolve("warning", 0, 30)], now=T0, new_event_id=lambda: "b"
    )

    event = second.event
    assert event is not None
    assert event.type is EventType.ALL_CLEAR
    assert event.free_percent is None
    assert event.starts_at == T0
    assert event.ends_at == minutes(30)
    assert second.state is not None
    assert second.state.incident_started_at is None


def test_incident_start_kept_on_escalation() -> None:
    result = run([fire("warning")], [fire("critical", 10)])

    assert result.state is not None
    assert result.state.incident_started_at == T0


def test_repeat_without_change_saves_nothing() -> None:
    first = apply_alerts(
        DISK, None, [fire("warning")], now=T0, new_event_id=lambda: "a"
    )

    again = apply_alerts(
        DISK, first.state, [fire("warning")], now=T0, new_event_id=lambda: "b"
    )

    assert again.state is None
    assert again.event is None


def test_state_round_trips_as_dict() -> None:
    result = run([fire("warning"), unknown()], [fire("critical", 3)])
    assert result.state is not None

    assert DiskState.from_dict(result.state.to_dict()) == result.state


def test_group_by_disk_ignores_severity_label() -> None:
    other = {**LABELS, "mountpoint": "/"}
    alerts = [fire("warning"), fire("critical"), alert("warning", labels=other)]

    groups = group_by_disk(alerts)

    assert list(groups) == [DISK, DiskKey.from_alert_labels(other)]
    assert len(groups[DISK]) == 2


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({}, Thresholds(20.0, 10.0)),
        ({"warning_threshold": "25", "critical_threshold": "5"}, Thresholds(25.0, 5.0)),
        # A percent sign and spaces are tolerated.
        ({"warning_threshold": " 30% "}, Thresholds(30.0, 10.0)),
        # Garbage and out-of-range values fall back to the defaults.
        (
            {"warning_threshold": "abc", "critical_threshold": "nan"},
            Thresholds(20.0, 10.0),
        ),
        ({"warning_threshold": "120"}, Thresholds(20.0, 10.0)),
    ],
)
def test_thresholds_from_annotations(
    annotations: dict[str, str], expected: Thresholds
) -> None:
    assert thresholds_from(annotations) == expected
