"""Adversarial tests of the per-disk state machine.

Alertmanager repeats, duplicates, retries and reorders what it sends. These
tests build message sequences the way it does and check the notifications
against an ideal model. In that model the level of a disk is the highest
severity whose newest known firing period still fires, and the events sent
for a disk are exactly the changes of that level.
"""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning

from bridge.alertmanager import Alert
from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import Integration
from bridge.model import DiskKey, Event, EventType, Level
from bridge.state import DiskState, apply_alerts
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Outcome, Retry, SendContext
from tests.bridge.test_app import BEARER, RecordingTarget, wait_for

with warnings.catch_warnings():
    # Starlette warns at import that its test client prefers httpx2.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
# The rules evaluate every 5 minutes: one step of a scenario.
STEP = timedelta(minutes=5)
LABELS = {"project": "shop", "service": "db", "mountpoint": "/var/lib/pg"}
DISK = DiskKey.from_alert_labels(LABELS)
SEVERITIES = ("warning", "critical")

W, C, D, A = (
    EventType.WARNING,
    EventType.CRITICAL,
    EventType.DEESCALATION,
    EventType.ALL_CLEAR,
)


def at(step: float) -> datetime:
    return T0 + step * STEP


def annotations(severity: str, free: str) -> dict[str, str]:
    """The rule's annotations, whose description quotes the value, as ours do."""
    return {
        "free_percent": free,
        "summary": f"Low disk space ({severity})",
        "description": f"/var/lib/pg has {free}% space available.",
    }


def fire(
    severity: str, starts: float, free: str = "15.00", ends: float | None = None
) -> Alert:
    """A firing alert; ``ends`` is the future endsAt some senders set."""
    return Alert(
        status="firing",
        labels={**LABELS, "alertname": "LowDiskSpace", "severity": severity},
        annotations=annotations(severity, free),
        starts_at=at(starts),
        ends_at=at(ends) if ends is not None else None,
    )


def resolve(severity: str, starts: float, ends: float, free: str = "9.00") -> Alert:
    """A resolved alert; its annotations are those of its last firing."""
    return Alert(
        status="resolved",
        labels={**LABELS, "alertname": "LowDiskSpace", "severity": severity},
        annotations=annotations(severity, free),
        starts_at=at(starts),
        ends_at=at(ends),
    )


def unknown(starts: float, ends: float | None = None) -> Alert:
    return Alert(
        status="firing" if ends is None else "resolved",
        labels={**LABELS, "alertname": "DiskSpaceUnknown", "severity": "warning"},
        annotations={"reason": "no_data"},
        starts_at=at(starts),
        ends_at=at(ends) if ends is not None else None,
    )


class Bridge:
    """Runs `apply_alerts` as the store does, through its JSON round trip."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.events: list[EventType] = []
        self._ids = (f"event-{number}" for number in itertools.count())

    @property
    def state(self) -> DiskState | None:
        return DiskState.from_dict(self.stored) if self.stored else None

    @property
    def level(self) -> Level:
        state = self.state
        return state.level if state else Level.OK

    def send(self, alerts: Sequence[Alert]) -> EventType | None:
        change = apply_alerts(
            DISK, self.state, alerts, now=at(1000), new_event_id=self._ids.__next__
        )
        if change.state is not None:
            # Saved as JSON, as the store does, so a restart between any two
            # messages is part of every test.
            self.stored = json.loads(json.dumps(change.state.to_dict()))
        if change.event is None:
            return None
        self.events.append(change.event.type)
        return change.event.type


def run(*messages: Sequence[Alert]) -> Bridge:
    bridge = Bridge()
    for alerts in messages:
        bridge.send(alerts)
    return bridge


# Each row: a name, the messages in the order the bridge receives them, the
# events expected and the final level. Times are in 5-minute steps.
CASES = [
    # Alertmanager restarts and loses its notification log: it sends the
    # same firing again with the startsAt of the first firing.
    (
        "restart_without_nflog_resends_firing",
        [[fire("warning", 0)], [fire("warning", 0, free="14.00")]],
        [W],
        Level.WARNING,
    ),
    # repeat_interval repeats of both groups, then both resolve.
    (
        "repeats_then_resolve",
        [
            [fire("warning", 0)],
            [fire("critical", 2)],
            [fire("warning", 0)],
            [fire("critical", 2)],
            [resolve("critical", 2, 6)],
            [resolve("warning", 0, 7)],
        ],
        [W, C, D, A],
        Level.OK,
    ),
    # A firing alert whose endsAt is a future time, not the zero time.
    (
        "firing_with_future_ends_at",
        [[fire("warning", 0, ends=4)], [resolve("warning", 0, 2)]],
        [W, A],
        Level.OK,
    ),
    # A 5xx made Alertmanager retry the firing after the resolve had been
    # accepted: the retry is stale and must not warn again.
    (
        "firing_retried_after_resolve",
        [[fire("warning", 0)], [resolve("warning", 0, 3)], [fire("warning", 0)]],
        [W, A],
        Level.OK,
    ),
    # The resolve overtakes the firing it ends, for a disk never seen.
    (
        "resolve_before_its_firing",
        [[resolve("warning", 0, 3)], [fire("warning", 0)]],
        [],
        Level.OK,
    ),
    # One message holding a resolved critical and a firing warning, then the
    # warning resolves: a de-escalation, then the all-clear.
    (
        "mixed_message_deescalates",
        [
            [fire("warning", 0), fire("critical", 1)],
            [resolve("critical", 1, 3), fire("warning", 0)],
            [resolve("warning", 0, 4)],
        ],
        [C, D, A],
        Level.OK,
    ),
    # Warning and critical in separate groups: the critical group's resolve
    # arrives after the warning group's, in the same evaluation.
    (
        "separate_groups_resolve_in_either_order",
        [
            [fire("warning", 0)],
            [fire("critical", 1)],
            [resolve("warning", 0, 3)],
            [resolve("critical", 1, 3)],
        ],
        [W, C, A],
        Level.OK,
    ),
    # The HA peers' firings of one period carry different startsAt; the
    # later view's repeat arrives after the resolve (gossip delay).
    (
        "ha_peer_late_firing_after_resolve",
        [
            [fire("warning", 0)],
            [fire("warning", 1)],
            [resolve("warning", 0, 4)],
            [fire("warning", 1)],
            [resolve("warning", 1, 4)],
        ],
        [W, A],
        Level.OK,
    ),
    # A second period starts after the first ended; a peer's late resolve
    # of the first period is stale.
    (
        "late_resolve_of_previous_period",
        [
            [fire("warning", 0)],
            [resolve("warning", 0, 2)],
            [fire("warning", 4)],
            [resolve("warning", 0, 2)],
            [fire("warning", 0)],
        ],
        [W, A, W],
        Level.WARNING,
    ),
    # Resolve for a critical never seen while warning fires: no event.
    (
        "resolve_of_unseen_severity",
        [[fire("warning", 0)], [resolve("critical", 1, 2)]],
        [W],
        Level.WARNING,
    ),
    # The exporter stops: LowDiskSpace resolves for lack of data while the
    # unknown alert fires. The level holds, and falls when data returns.
    (
        "unknown_holds_then_releases",
        [
            [fire("critical", 0), fire("warning", 0)],
            [unknown(3)],
            [resolve("critical", 0, 4), resolve("warning", 0, 4)],
            [unknown(3, 8)],
        ],
        [C, A],
        Level.OK,
    ),
    # Data returns showing the disk between 10% and 20%: the hold ends with
    # a de-escalation, never an all-clear.
    (
        "unknown_release_deescalates",
        [
            [fire("critical", 0), fire("warning", 0)],
            [unknown(3)],
            [resolve("critical", 0, 4)],
            [unknown(3, 8)],
        ],
        [C, D],
        Level.WARNING,
    ),
    # The resolve of the unknown alert arrives before the LowDiskSpace
    # resolves: nothing holds the level any more, so recovery goes through.
    (
        "unknown_resolves_first",
        [
            [fire("warning", 0)],
            [unknown(3)],
            [unknown(3, 8)],
            [resolve("warning", 0, 8)],
        ],
        [W, A],
        Level.OK,
    ),
    # A stale unknown firing (a retry) after the unknown resolved does not
    # hold the level again.
    (
        "stale_unknown_does_not_hold",
        [
            [fire("warning", 0)],
            [unknown(3)],
            [unknown(3, 8)],
            [unknown(3)],
            [resolve("warning", 0, 9)],
        ],
        [W, A],
        Level.OK,
    ),
    # The level can still rise while data is missing for another reason.
    (
        "unknown_does_not_block_escalation",
        [[fire("warning", 0)], [unknown(3)], [fire("critical", 4)]],
        [W, C],
        Level.CRITICAL,
    ),
    # An unknown alert alone, for a disk never seen, notifies nothing.
    (
        "unknown_alone",
        [[unknown(0)], [unknown(0, 5)]],
        [],
        Level.OK,
    ),
    # Ambiguous, current behaviour kept: the disk goes from critical to
    # above 20% in one evaluation, and the critical group's resolve arrives
    # before the warning group's. Until the second message the stored
    # warning alert still fires, so the bridge sends a de-escalation.
    # Waiting for the other group would delay every real de-escalation.
    # Routing both severities to one group (group_by without severity)
    # gives a single all-clear.
    (
        "both_resolve_critical_group_first",
        [
            [fire("warning", 0)],
            [fire("critical", 1)],
            [resolve("critical", 1, 3)],
            [resolve("warning", 0, 3)],
        ],
        [W, C, D, A],
        Level.OK,
    ),
    # Ambiguous, current behaviour kept: data returns showing the disk still
    # low. LowDiskSpace resolved for lack of data, while the unknown alert
    # held the level; now the unknown resolve arrives before the new
    # LowDiskSpace firing. A healthy disk sends nothing more after the
    # unknown resolve, so the bridge cannot wait for a firing that may never
    # come: it sends the all-clear, then the new warning.
    (
        "unknown_resolve_before_new_firing",
        [
            [fire("warning", 0)],
            [unknown(2)],
            [resolve("warning", 0, 12)],
            [unknown(2, 14)],
            [fire("warning", 14)],
        ],
        [W, A, W],
        Level.WARNING,
    ),
    # Known limit: a silenced or inhibited unknown alert that resolves is
    # never sent as resolved, so the level it holds stays until a
    # LowDiskSpace alert fires again.
    (
        "unknown_resolve_never_sent",
        [[fire("warning", 0)], [unknown(2)], [resolve("warning", 0, 12)]],
        [W],
        Level.WARNING,
    ),
    # Ambiguous, current behaviour kept: peer B of an HA pair loses its
    # Prometheus before the first period's resolve. Peer A resolves it and
    # warns for a second period. B never hears of the resolve, so it
    # resolves the first period when its endsAt passes. Prometheus sets a
    # firing alert's endsAt to the send time plus 4 times the evaluation
    # interval (rules/alerting.go, sendAlerts), 20 minutes with our rules,
    # so this endsAt falls after the second period started. Timestamps
    # cannot tell this resolve from B's view of one merged period that
    # really ended, which the bridge must accept because B may be the only
    # peer to send it. So it is accepted: a false all-clear, and A's
    # repeats of the second period stay ignored until that period resolves.
    (
        "ha_peer_timeout_resolve_after_new_period",
        [
            [fire("warning", 0)],
            [resolve("warning", 0, 2)],
            [fire("warning", 3)],
            [resolve("warning", 0, 5)],
            [fire("warning", 3)],
            [resolve("warning", 3, 9)],
        ],
        [W, A, W, A],
        Level.OK,
    ),
]


@pytest.mark.parametrize(
    ("messages", "expected", "level"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_sequence(
    messages: list[list[Alert]], expected: list[EventType], level: Level
) -> None:
    bridge = run(*messages)

    assert bridge.events == expected
    assert bridge.level is level


def test_every_message_replayed_twice_adds_nothing() -> None:
    for _, sequence, expected, level in CASES:
        doubled = [message for message in sequence for _ in range(2)]

        bridge = run(*doubled)

        assert bridge.events == expected
        assert bridge.level is level


# The ideal model, for sequences built from a timeline of true levels.


@dataclass(frozen=True)
class Period:
    """One firing period of one severity, in steps; ``end`` None while firing."""

    severity: str
    index: int
    start: int
    end: int | None


@dataclass(frozen=True)
class Sent:
    """One alert of a message, with its place in the ideal model's order."""

    alert: Alert
    severity: str
    # Newer information ranks higher: a later period, and within one period
    # the resolve after the firing.
    rank: tuple[int, int]


def periods_of(levels: Sequence[int]) -> list[Period]:
    periods: list[Period] = []
    for severity, floor in (("warning", 1), ("critical", 2)):
        start = None
        index = 0
        for step, level in enumerate([*levels, 0]):
            low = level >= floor
            if low and start is None:
                start = step
            elif not low and start is not None:
                end = step if step < len(levels) else None
                periods.append(Period(severity, index, start, end))
                index += 1
                start = None
    return periods


def unknown_periods(gaps: Sequence[bool]) -> list[Period]:
    """The unknown alert's periods, from the steps where data is missing."""
    return [
        replace(period, severity="unknown")
        for period in periods_of([2 if gap else 0 for gap in gaps])
        if period.severity == "critical"
    ]


def sent_firing(period: Period, starts: float, step: int, valid: bool) -> Sent:
    if period.severity == "unknown":
        alert = unknown(starts)
    else:
        # Some senders put the alert's validity, a future time, in endsAt.
        ends = step + 4 if valid else None
        alert = fire(period.severity, starts, free=f"{step}.00", ends=ends)
    return Sent(alert, period.severity, (period.index, 0))


def sent_resolve(period: Period, starts: float, ends: float) -> Sent:
    if period.severity == "unknown":
        alert = unknown(starts, ends)
    else:
        alert = resolve(period.severity, starts, ends)
    return Sent(alert, period.severity, (period.index, 1))


def messages_of(
    levels: Sequence[int], data: st.DataObject, gaps: Sequence[bool] = ()
) -> list[list[Sent]]:
    """Alertmanager's messages for a timeline, in the order they were sent."""
    timed: list[tuple[float, list[Sent]]] = []
    for period in [*periods_of(levels), *unknown_periods(gaps)]:
        last = period.end if period.end is not None else len(levels)
        # A peer's view of the period may start later, never after its end.
        views = [period.start]
        if last - period.start > 1:
            views.append(period.start + 0.5)
        for step in range(period.start, last):
            if step == period.start or data.draw(st.booleans()):
                starts = data.draw(st.sampled_from(views))
                valid = data.draw(st.booleans())
                timed.append((step, [sent_firing(period, starts, step, valid)]))
        if period.end is not None:
            starts = data.draw(st.sampled_from(views))
            # The replicas of a Prometheus pair evaluate at different offsets,
            # so their resolves differ by less than one step. The next period
            # starts at least one step after the end.
            ends = period.end + data.draw(st.sampled_from([0, 0.25]))
            timed.append((period.end, [sent_resolve(period, starts, ends)]))
    timed.sort(key=lambda item: item[0])

    # Warning and critical changes of one evaluation may share a message.
    merged: list[tuple[float, list[Sent]]] = []
    for step, sent in timed:
        if merged and merged[-1][0] == step and data.draw(st.booleans()):
            merged[-1][1].extend(sent)
        else:
            merged.append((step, list(sent)))
    return [sent for _, sent in merged]


def deliver(messages: list[list[Sent]], data: st.DataObject) -> list[list[Sent]]:
    """Add HA duplicates, and retries after a 5xx that arrive late."""
    delivered = list(messages)
    for message in messages:
        choice = data.draw(st.integers(0, 5))
        if choice > 1:
            continue
        position = next(i for i, m in enumerate(delivered) if m is message)
        if choice == 1:
            # The first attempt failed: only the retry counts.
            del delivered[position]
        later = data.draw(st.integers(position, len(delivered)))
        delivered.insert(later, list(message))
    return delivered


# Each run applies up to about 60 messages in memory, so 150 runs take well
# under a second.
MODEL_RUNS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def ideal_level(newest: dict[str, Sent], previous: Level = Level.OK) -> Level:
    firing = [
        Level.from_severity(sent.severity)
        for kind, sent in newest.items()
        if sent.alert.firing and kind != "unknown"
    ]
    level = max(firing, default=Level.OK)
    hold = newest.get("unknown")
    if hold is not None and hold.alert.firing:
        # Missing data proves nothing: the level can rise, never fall.
        return max(level, previous)
    return level


def receive(newest: dict[str, Sent], message: Sequence[Sent]) -> None:
    """Keep, per kind of alert, the newest information the bridge was sent."""
    for sent in message:
        known = newest.get(sent.severity)
        if known is None or sent.rank >= known.rank:
            newest[sent.severity] = sent


def expected_event(previous: Level, level: Level) -> EventType | None:
    if previous == level:
        return None
    return EventType.for_transition(previous, level)


@MODEL_RUNS
@given(levels=st.lists(st.integers(0, 2), min_size=1, max_size=14), data=st.data())
def test_events_follow_the_ideal_level(levels: list[int], data: st.DataObject) -> None:
    bridge = Bridge()
    newest: dict[str, Sent] = {}
    level = Level.OK

    for message in deliver(messages_of(levels, data), data):
        receive(newest, message)
        previous, level = level, ideal_level(newest)

        event = bridge.send([sent.alert for sent in message])

        assert event == expected_event(previous, level), levels
        assert bridge.level is level
    for first, second in itertools.pairwise(bridge.events):
        assert first != second


@MODEL_RUNS
@given(
    steps=st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=14),
    data=st.data(),
)
def test_unknown_holds_only_while_it_fires(
    steps: list[tuple[int, bool]], data: st.DataObject
) -> None:
    levels = [level for level, _ in steps]
    gaps = [gap for _, gap in steps]
    bridge = Bridge()
    newest: dict[str, Sent] = {}
    level = Level.OK

    for message in deliver(messages_of(levels, data, gaps), data):
        receive(newest, message)
        previous, level = level, ideal_level(newest, level)

        event = bridge.send([sent.alert for sent in message])

        assert event == expected_event(previous, level), steps
        assert bridge.level is level
    if "unknown" not in newest or not newest["unknown"].alert.firing:
        assert bridge.level is ideal_level(newest)


# The same kind of sequences through the HTTP app and its SQLite store.


def wire(alert: Alert) -> dict[str, Any]:
    """Alertmanager's JSON for an alert, with nine fractional digits."""

    def stamp(moment: datetime | None) -> str:
        if moment is None:
            return "0001-01-01T00:00:00Z"
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"

    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": stamp(alert.starts_at),
        "endsAt": stamp(alert.ends_at),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "c0ffee",
        "unknownNewerField": {"kept": False},
    }


def body(*alerts: Alert) -> dict[str, Any]:
    return {
        "version": "4",
        # Wrong on purpose for mixed messages: the bridge decides per alert.
        "status": "firing",
        "receiver": "bridge",
        "groupKey": '{}:{severity="warning"}',
        "externalURL": "http://alertmanager:9093",
        "truncatedAlerts": 0,
        "notification_reason": "repeat",
        "alerts": [wire(alert) for alert in alerts],
    }


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[tuple[TestClient, RecordingTarget]]:
    store = SQLiteStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    target = RecordingTarget()
    config = Settings(
        bridge_token=BEARER["Authorization"].removeprefix("Bearer "),
        admin_token="admin-token-9876543210",
        delivery_poll_seconds=0.02,
    )
    app = create_app(config, store=store, targets={"health.webhook": target})
    with TestClient(app) as client:
        yield client, target
    store.close()


def post_all(client: TestClient, *messages: Sequence[Alert]) -> list[int]:
    transitions = []
    for alerts in messages:
        response = client.post("/alertmanager", json=body(*alerts), headers=BEARER)
        assert response.status_code == 200, response.text
        transitions.append(response.json()["transitions"])
    return transitions


def test_app_ha_pair_with_late_retries(
    app_client: tuple[TestClient, RecordingTarget],
) -> None:
    client, target = app_client
    messages = [
        [fire("warning", 0)],
        [fire("warning", 1)],
        [fire("warning", 0), fire("critical", 2)],
        [fire("warning", 0), resolve("critical", 2, 4)],
        [fire("critical", 2)],
        [resolve("warning", 1, 6)],
        [fire("warning", 0), resolve("critical", 2, 4)],
        [resolve("warning", 0, 6)],
        [fire("warning", 1)],
    ]

    transitions = post_all(client, *messages)

    assert transitions == [1, 0, 1, 1, 0, 1, 0, 0, 0]
    wait_for(lambda: len(target.events) == 4)
    assert [event.type for event in target.events] == [W, C, D, A]
    clear = target.events[-1]
    # The resolve's annotations are stale: no free space in an all-clear.
    assert clear.free_percent is None
    assert clear.starts_at == at(0)


def test_app_unknown_hold_and_release(
    app_client: tuple[TestClient, RecordingTarget],
) -> None:
    client, target = app_client

    transitions = post_all(
        client,
        [fire("warning", 0)],
        [unknown(3)],
        [resolve("warning", 0, 4)],
        [unknown(3)],
        [unknown(3, 9), resolve("warning", 0, 4)],
        [unknown(3)],
    )

    assert transitions == [1, 0, 0, 0, 1, 0]
    wait_for(lambda: len(target.events) == 2)
    assert [event.type for event in target.events] == [W, A]


def test_app_resolve_of_never_seen_disk(
    app_client: tuple[TestClient, RecordingTarget],
) -> None:
    client, target = app_client

    transitions = post_all(client, [resolve("critical", 0, 3)], [fire("critical", 0)])

    assert transitions == [0, 0]
    assert target.events == []


# What the events contain. A resolved alert carries the annotations of its last
# firing evaluation, and a firing alert those of the last message that held
# it: a value quoted from older annotations is not the disk's current state.


def events_of(*messages: Sequence[Alert]) -> list[Any]:
    state: DiskState | None = None
    events = []
    for alerts in messages:
        change = apply_alerts(
            DISK, state, alerts, now=at(100), new_event_id=lambda: "event"
        )
        state = change.state or state
        if change.event is not None:
            events.append(change.event)
    return events


def test_all_clear_quotes_no_stale_value() -> None:
    events = events_of([fire("warning", 0)], [resolve("warning", 0, 3, free="19.50")])

    clear = events[-1]
    assert clear.type is A
    assert clear.free_percent is None
    # The description of the last firing quotes "19.50% space available".
    assert "19.50" not in (clear.description or "")
    assert clear.summary == "Low disk space (warning)"


def test_deescalation_from_another_group_quotes_no_stale_value() -> None:
    # The warning group last sent its alert while the disk was at 5%; the
    # critical group's resolve then brings the level back to warning.
    events = events_of(
        [fire("warning", 0, free="18.00")],
        [fire("critical", 1, free="5.00")],
        [fire("warning", 0, free="5.00")],
        [resolve("critical", 1, 3, free="8.00")],
    )

    back = events[-1]
    assert back.type is D
    assert back.free_percent is None
    assert back.description is None
    assert back.summary == "Low disk space (warning)"


def test_deescalation_in_the_warning_group_quotes_its_value() -> None:
    events = events_of(
        [fire("warning", 0, free="18.00"), fire("critical", 1, free="5.00")],
        [fire("warning", 0, free="14.00"), resolve("critical", 1, 3, free="8.00")],
    )

    back = events[-1]
    assert back.type is D
    assert back.free_percent == "14.00"
    assert back.description == "/var/lib/pg has 14.00% space available."


def test_app_concurrent_ha_pair_notifies_once(
    app_client: tuple[TestClient, RecordingTarget],
) -> None:
    client, target = app_client
    disks = [f"/data{number}" for number in range(6)]

    def peer() -> None:
        for mountpoint in disks:
            labels = {**LABELS, "mountpoint": mountpoint}
            for alerts in ([fire("warning", 0)], [resolve("warning", 0, 3)]):
                payload = body(*alerts)
                for sent in payload["alerts"]:
                    sent["labels"] = {**sent["labels"], **labels}
                response = client.post("/alertmanager", json=payload, headers=BEARER)
                assert response.status_code == 200

    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in [pool.submit(peer), pool.submit(peer)]:
            done.result()

    wait_for(lambda: len(target.events) == 2 * len(disks))
    by_disk: dict[str, list[EventType]] = {}
    for event in target.events:
        by_disk.setdefault(event.disk.as_dict()["mountpoint"], []).append(event.type)
    assert by_disk == {mountpoint: [W, A] for mountpoint in disks}


class FlakyTarget(RecordingTarget):
    """Asks for a retry of each event's first two attempts."""

    def __init__(self) -> None:
        super().__init__()
        self.attempts: dict[str, int] = {}

    async def send(self, event: Event, context: SendContext) -> Outcome:
        self.attempts[event.id] = self.attempts.get(event.id, 0) + 1
        if self.attempts[event.id] <= 2:
            return Retry(reason="503 from the receiver", after=0.05)
        return await super().send(event, context)


def test_app_all_clear_waits_for_retried_warning(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    target = FlakyTarget()
    config = Settings(
        bridge_token=BEARER["Authorization"].removeprefix("Bearer "),
        admin_token="admin-token-9876543210",
        delivery_poll_seconds=0.02,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.1,
    )
    app = create_app(config, store=store, targets={"health.webhook": target})

    with TestClient(app) as client:
        post_all(client, [fire("warning", 0)], [resolve("warning", 0, 3)])
        wait_for(lambda: len(target.events) == 2)
    store.close()

    assert [event.type for event in target.events] == [W, A]
    assert sorted(target.attempts.values()) == [3, 3]
