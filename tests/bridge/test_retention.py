"""Tests of store retention: `SQLiteStore.prune` and the `StorePruner` task.

Rows are written at the real time, and each test prunes with an explicit
``now`` (`NOW`, two months ahead) or sets ``delivered_at`` and
``created_at`` through the store's own calls, so that no test waits for
rows to age.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import Integration
from bridge.metrics import BridgeMetrics
from bridge.model import DiskKey, Event, EventType, Level
from bridge.retention import StorePruner
from bridge.state import DiskState
from bridge.store.base import (
    DEAD,
    DELIVERED,
    PENDING,
    DeliverySuperseded,
    Pruned,
    StoreError,
    Transitions,
)
from bridge.store.sqlite import SQLiteStore

with warnings.catch_warnings():
    # Starlette 1.10 warns at import that its test client prefers the httpx2
    # package; the pinned httpx works the same for these tests.
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

DAY = timedelta(days=1)
RETENTION = 30 * DAY
# Rows written now are two months old at NOW.
NOW = datetime.now(UTC) + 60 * DAY
CUTOFF = NOW - RETENTION


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "bridge.db")
    opened.create_integration(Integration(id="hook", type="health.webhook"))
    yield opened
    opened.close()


def event(
    number: int, disk: DiskKey | None = None, level: Level = Level.WARNING
) -> Event:
    disk = disk or DiskKey.from_alert_labels(
        {"project": "p", "mountpoint": f"/{number}"}
    )
    previous = Level.OK if level is not Level.OK else Level.WARNING
    return Event(
        id=f"event-{number}",
        type=EventType.for_transition(previous, level),
        disk=disk,
        level=level,
        previous_level=previous,
        occurred_at=datetime.now(UTC),
        free_percent="15.5" if level is not Level.OK else None,
        starts_at=datetime.now(UTC),
    )


def commit(store: SQLiteStore, *events: Event) -> list[int]:
    """Commit ``events`` as one message; return the new delivery ids, oldest first."""

    def decide(current: Mapping[str, DiskState]) -> Transitions:
        states = [DiskState(disk=item.disk, level=item.level) for item in events]
        return Transitions(states=states, events=events)

    before = set(delivery_ids(store))
    store.apply_transitions({item.disk.id for item in events}, decide)
    return [number for number in delivery_ids(store) if number not in before]


def new_deliveries(store: SQLiteStore, count: int, first: int = 0) -> list[int]:
    return commit(store, *(event(first + number) for number in range(count)))


def query(store: SQLiteStore, sql: str) -> list[Any]:
    """Read through a connection of the test's own, as another process would."""
    with sqlite3.connect(store.path) as other:
        return [row[0] for row in other.execute(sql).fetchall()]


def delivery_ids(store: SQLiteStore) -> list[int]:
    return query(store, "SELECT id FROM deliveries ORDER BY id")


def event_ids(store: SQLiteStore) -> list[str]:
    return query(store, "SELECT id FROM events ORDER BY id")


def row_counts(store: SQLiteStore) -> dict[str, int]:
    """Count the rows of the tables that pruning must leave alone."""
    with sqlite3.connect(store.path) as other:
        return {
            table: other.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in ("disks", "threads", "integrations", "meta")
        }


def sample(metrics: BridgeMetrics, table: str) -> float | None:
    return metrics.registry.get_sample_value(
        "webpaas_bridge_store_pruned_rows_total", {"table": table}
    )


def wait_for(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# SQLiteStore.prune ----------------------------------------------------


def test_prune_old_delivered_keeps_recent(store: SQLiteStore) -> None:
    old, recent = new_deliveries(store, 2)
    store.mark_delivered(old, CUTOFF - DAY, None)
    store.mark_delivered(recent, CUTOFF + DAY, None)

    pruned = store.prune(CUTOFF, 1000)

    assert pruned == Pruned(deliveries=1, events=1)
    assert delivery_ids(store) == [recent]
    # The recent delivery's event is older than the cutoff but still referenced.
    assert event_ids(store) == ["event-1"]


def test_prune_old_dead_keeps_recent(store: SQLiteStore) -> None:
    old, died_late, retried = new_deliveries(store, 3)
    store.mark_dead(old, CUTOFF - 20 * DAY, "the receiver answered HTTP 400")
    # The age counts from created_at, not from the death.
    store.mark_dead(died_late, CUTOFF + DAY, "gave up after 86400 s: HTTP 503")
    store.mark_dead(retried, CUTOFF - 20 * DAY, "the receiver answered HTTP 400")
    # A retry resets created_at.
    store.requeue_delivery(retried, CUTOFF + DAY)
    store.mark_dead(retried, CUTOFF + 2 * DAY, "the receiver answered HTTP 400")

    pruned = store.prune(CUTOFF, 1000)

    assert pruned == Pruned(deliveries=2, events=2)
    assert delivery_ids(store) == [retried]
    assert [item.status for item in store.list_deliveries()] == [DEAD]


def test_prune_never_deletes_pending(store: SQLiteStore) -> None:
    waiting, retried = new_deliveries(store, 2)
    store.mark_retry(waiting, NOW, "timed out after 10 s")
    store.mark_dead(retried, CUTOFF - 40 * DAY, "the receiver answered HTTP 400")
    store.requeue_delivery(retried, CUTOFF - 30 * DAY)
    far_future = NOW + 3650 * DAY

    pruned = store.prune(far_future, 1000)

    assert pruned == Pruned()
    assert delivery_ids(store) == [waiting, retried]
    assert len(event_ids(store)) == 2
    due = store.due_deliveries(far_future, limit=10)
    assert sorted(item.id for item in due) == [waiting, retried]
    assert {item.status for item in due} == {PENDING}


def test_prune_keeps_event_until_last_delivery(store: SQLiteStore) -> None:
    store.create_integration(Integration(id="second", type="health.webhook"))
    first, second = commit(store, event(1))
    store.mark_delivered(first, CUTOFF - DAY, None)

    while_referenced = store.prune(CUTOFF, 1000)
    events_then = event_ids(store)
    store.mark_delivered(second, CUTOFF - DAY, None)
    after_last = store.prune(CUTOFF, 1000)

    assert while_referenced == Pruned(deliveries=1, events=0)
    assert events_then == ["event-1"]
    assert after_last == Pruned(deliveries=1, events=1)
    assert event_ids(store) == []
    assert delivery_ids(store) == []


def test_prune_event_without_deliveries(store: SQLiteStore) -> None:
    store.delete_integration("hook")
    commit(store, event(1))

    recent = store.prune(datetime.now(UTC) - DAY, 1000)
    old = store.prune(CUTOFF, 1000)

    assert recent == Pruned()
    assert old == Pruned(deliveries=0, events=1)


def test_prune_leaves_other_tables(store: SQLiteStore) -> None:
    (delivery,) = new_deliveries(store, 1)
    store.mark_delivered(delivery, CUTOFF - DAY, "1700000000.000100")
    before = row_counts(store)

    pruned = store.prune(CUTOFF, 1000)

    assert pruned == Pruned(deliveries=1, events=1)
    assert row_counts(store) == before
    assert before == {"disks": 1, "threads": 1, "integrations": 1, "meta": 1}
    assert store.get_thread_ref("hook", event(0).disk.id) == "1700000000.000100"


def test_prune_limit_per_call_dead_first(store: SQLiteStore) -> None:
    ids = new_deliveries(store, 6)
    for delivery in ids[:3]:
        store.mark_delivered(delivery, CUTOFF - DAY, None)
    for delivery in ids[3:]:
        store.mark_dead(delivery, CUTOFF - DAY, "the receiver answered HTTP 400")

    first = store.prune(CUTOFF, 4)
    statuses = query(store, "SELECT status FROM deliveries")
    second = store.prune(CUTOFF, 4)
    third = store.prune(CUTOFF, 4)
    fourth = store.prune(CUTOFF, 4)

    assert first == Pruned(deliveries=4, events=0)
    assert statuses == [DELIVERED, DELIVERED]
    assert second == Pruned(deliveries=2, events=2)
    assert third == Pruned(deliveries=0, events=4)
    assert fourth == Pruned()
    assert event_ids(store) == []


def test_prune_never_orphans_superseded_dead_letter(store: SQLiteStore) -> None:
    disk = DiskKey.from_alert_labels({"project": "p", "mountpoint": "/data"})
    (warning,) = commit(store, event(1, disk))
    (all_clear,) = commit(store, event(2, disk, Level.OK))
    created = store.list_deliveries(PENDING)[-1].created_at
    store.mark_dead(warning, created + timedelta(minutes=1), "HTTP 400")
    store.mark_delivered(all_clear, created + timedelta(hours=1), None)
    cutoffs = [created, created + timedelta(minutes=30), created + timedelta(hours=2)]

    for cutoff in cutoffs:
        store.prune(cutoff, 1000)

        left = delivery_ids(store)
        if all_clear not in left:
            assert warning not in left, cutoff
        if warning in left:
            with pytest.raises(DeliverySuperseded):
                store.requeue_delivery(warning, cutoff)
        else:
            with pytest.raises(LookupError):
                store.requeue_delivery(warning, cutoff)
    assert delivery_ids(store) == []


def test_listing_after_prune(store: SQLiteStore) -> None:
    old, dead, waiting = new_deliveries(store, 3)
    store.mark_delivered(old, CUTOFF - DAY, None)
    store.mark_dead(dead, CUTOFF + DAY, "the receiver answered HTTP 400")
    store.requeue_delivery(dead, CUTOFF + DAY)
    store.mark_dead(dead, CUTOFF + DAY, "the receiver answered HTTP 400")

    store.prune(CUTOFF, 1000)

    assert [item.id for item in store.list_deliveries()] == [waiting, dead]
    assert [item.id for item in store.list_deliveries(DEAD)] == [dead]
    assert store.requeue_delivery(dead, NOW).status == PENDING
    assert [item.id for item in store.due_deliveries(NOW, limit=10)] == [waiting, dead]


# StorePruner ----------------------------------------------------------


class RecordingStore(SQLiteStore):
    """Records the result of every batch."""

    batches: list[Pruned]

    async def prune_async(self, before: datetime, limit: int) -> Pruned:
        batch = await super().prune_async(before, limit)
        self.batches.append(batch)
        return batch


def test_pruner_deletes_in_batches(tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "bridge.db")
    store.batches = []
    store.create_integration(Integration(id="hook", type="health.webhook"))
    for delivery in new_deliveries(store, 10):
        store.mark_delivered(delivery, CUTOFF - DAY, None)
    metrics = BridgeMetrics()
    pruner = StorePruner(store, metrics, RETENTION.total_seconds(), batch_rows=7)

    try:
        total = asyncio.run(pruner.prune(NOW))
    finally:
        store.close()

    assert total == Pruned(deliveries=10, events=10)
    assert store.batches == [
        Pruned(deliveries=7, events=0),
        Pruned(deliveries=3, events=4),
        Pruned(deliveries=0, events=6),
    ]
    assert sample(metrics, "deliveries") == 10
    assert sample(metrics, "events") == 10


def test_pruner_logs_one_line_per_run(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    (delivery,) = new_deliveries(store, 1)
    store.mark_delivered(delivery, CUTOFF - DAY, None)
    pruner = StorePruner(store, BridgeMetrics(), RETENTION.total_seconds())
    caplog.set_level(logging.INFO, logger="bridge.retention")

    asyncio.run(pruner.prune(NOW))
    asyncio.run(pruner.prune(NOW))

    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert lines[0].startswith("store pruned deliveries=1 events=1 before=")
    assert "batches=1" in lines[0]


def test_pruner_zero_retention_keeps_all(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    (delivery,) = new_deliveries(store, 1)
    store.mark_delivered(delivery, CUTOFF - 3650 * DAY, None)
    metrics = BridgeMetrics()
    pruner = StorePruner(store, metrics, 0, first_delay_seconds=0)
    caplog.set_level(logging.INFO, logger="bridge.retention")

    async def main() -> Pruned:
        pruner.start()
        running = pruner.running
        pruned = await pruner.prune(NOW + 3650 * DAY)
        await pruner.stop()
        assert not running
        return pruned

    assert asyncio.run(main()) == Pruned()
    assert delivery_ids(store) == [delivery]
    assert sample(metrics, "deliveries") == 0
    assert "store pruning disabled retention_seconds=0" in caplog.text


class FlakyStore(SQLiteStore):
    """Fails the first prune as a full disk would."""

    failures = 1

    def prune(self, before: datetime, limit: int) -> Pruned:
        if self.failures:
            self.failures -= 1
            raise StoreError("SQLite prune failed: database or disk is full")
        return super().prune(before, limit)


def test_pruner_retries_after_store_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    (delivery,) = new_deliveries(store, 1)
    store.mark_delivered(delivery, CUTOFF - DAY, None)
    metrics = BridgeMetrics()
    pruner = StorePruner(
        store,
        metrics,
        RETENTION.total_seconds(),
        interval_seconds=0.01,
        first_delay_seconds=0,
        clock=lambda: NOW,
    )
    caplog.set_level(logging.INFO, logger="bridge.retention")

    async def main() -> bool:
        pruner.start()
        deadline = time.monotonic() + 5
        while delivery_ids(store) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        running = pruner.running
        await pruner.stop()
        return running

    try:
        still_running = asyncio.run(main())
    finally:
        store.close()

    assert still_running
    assert not pruner.running
    assert delivery_ids(store) == []
    records = [r for r in caplog.records if r.name == "bridge.retention"]
    failures = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert failures == [
        "store prune failed retry_in_seconds=0.01 "
        "error='SQLite prune failed: database or disk is full'"
    ]
    assert sample(metrics, "deliveries") == 1
    assert records[-1].getMessage() == "store pruner stopped"


class BrokenStore(SQLiteStore):
    """Raises what no store may raise, as a bug would."""

    def prune(self, before: datetime, limit: int) -> Pruned:
        raise RuntimeError("bug in prune")


def test_pruner_bug_logged_as_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BrokenStore(tmp_path / "bridge.db")
    pruner = StorePruner(
        store, BridgeMetrics(), RETENTION.total_seconds(), first_delay_seconds=0
    )

    async def main() -> bool:
        pruner.start()
        deadline = time.monotonic() + 5
        while pruner.running and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        running = pruner.running
        await pruner.stop()
        return running

    try:
        still_running = asyncio.run(main())
    finally:
        store.close()

    assert not still_running
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        "store pruner failed, pruning stops until a restart "
        "error=\"RuntimeError('bug in prune')\""
    ]


# The pruner in the app ------------------------------------------------


def app_settings(**changes: Any) -> Settings:
    return Settings(
        bridge_token="bridge-token-0123456789",
        admin_token="admin-token-9876543210",
        delivery_poll_seconds=0.02,
        **changes,
    )


def test_app_pruner_runs_and_stops(store: SQLiteStore) -> None:
    (delivery,) = new_deliveries(store, 1)
    store.mark_delivered(delivery, datetime.now(UTC) - 31 * DAY, None)
    app = create_app(
        app_settings(), store=store, targets={}, prune_interval_seconds=0.05
    )

    with TestClient(app, base_url="http://127.0.0.1") as client:
        wait_for(lambda: delivery_ids(store) == [])
        running = app.state.pruner.running
        text = client.get("/metrics").text

    assert running
    assert not app.state.pruner.running
    assert 'webpaas_bridge_store_pruned_rows_total{table="deliveries"} 1.0' in text
    # The event is younger than the retention, by the real clock.
    assert 'webpaas_bridge_store_pruned_rows_total{table="events"} 0.0' in text
    assert event_ids(store) == ["event-0"]


def test_app_zero_retention_starts_no_pruner(store: SQLiteStore) -> None:
    (delivery,) = new_deliveries(store, 1)
    store.mark_delivered(delivery, datetime.now(UTC) - 3650 * DAY, None)
    app = create_app(
        app_settings(store_retention_seconds=0),
        store=store,
        targets={},
        prune_interval_seconds=0.01,
    )

    with TestClient(app, base_url="http://127.0.0.1") as client:
        time.sleep(0.1)
        running = app.state.pruner.running
        text = client.get("/metrics").text

    assert not running
    assert delivery_ids(store) == [delivery]
    assert 'webpaas_bridge_store_pruned_rows_total{table="deliveries"} 0.0' in text
