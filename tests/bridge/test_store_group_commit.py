"""Tests of the store's group commit: many requests, one transaction, one fsync.

Each test keeps the committer inside a first request (a decide that waits
on an event), queues the requests it wants in one group, then lets the
committer go, so the group is known. The statements SQLite runs are
traced to count the commits.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.integrations import Integration
from bridge.model import DiskKey, Event, EventType, Level
from bridge.state import DiskState
from bridge.store.base import DELIVERED, PENDING, Decide, StoreError, Transitions
from bridge.store.sqlite import SQLiteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def disk(name: str) -> DiskKey:
    return DiskKey.from_alert_labels({"project": "p", "mountpoint": f"/{name}"})


def warning_event(event_id: str, key: DiskKey) -> Event:
    return Event(
        id=event_id,
        type=EventType.for_transition(Level.OK, Level.WARNING),
        disk=key,
        level=Level.WARNING,
        previous_level=Level.OK,
        occurred_at=T0,
        free_percent="15.5",
        starts_at=T0,
    )


def to_level(key: DiskKey, level: Level, event_id: str | None = None) -> Decide:
    def decide(current: Mapping[str, DiskState]) -> Transitions:
        events = [warning_event(event_id, key)] if event_id else []
        return Transitions(states=[DiskState(disk=key, level=level)], events=events)

    return decide


def failing(current: Mapping[str, DiskState]) -> Transitions:
    raise RuntimeError("decide failed")


class BlockedCommitter:
    """Keeps the committer busy in one request until `release`."""

    def __init__(self, store: SQLiteStore, pool: ThreadPoolExecutor) -> None:
        self.store = store
        self.pool = pool
        self.entered = threading.Event()
        self.gate = threading.Event()

        def decide(current: Mapping[str, DiskState]) -> Transitions:
            self.entered.set()
            assert self.gate.wait(10)
            return Transitions()

        self.first = pool.submit(store.apply_transitions, [], decide)
        assert self.entered.wait(10)

    def queue(self, call: Callable[[], Any]) -> Future[Any]:
        """Run ``call`` in a thread and wait until its request is queued."""
        waiting = self.store._committer._queue.qsize()
        future = self.pool.submit(call)
        deadline = time.monotonic() + 10
        while self.store._committer._queue.qsize() <= waiting:
            assert time.monotonic() < deadline, "the request was never queued"
            time.sleep(0.001)
        return future

    def release(self) -> None:
        self.gate.set()
        self.first.result(10)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "bridge.db")
    yield opened
    opened.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


def trace(store: SQLiteStore) -> list[str]:
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    return statements


def commits(statements: list[str]) -> int:
    return sum(1 for text in statements if text.strip().upper() == "COMMIT")


def test_failing_decide_fails_alone(
    store: SQLiteStore, pool: ThreadPoolExecutor
) -> None:
    first, second = disk("first"), disk("second")
    blocked = BlockedCommitter(store, pool)
    statements = trace(store)

    ok_before = blocked.queue(
        lambda: store.apply_transitions(
            [first.id], to_level(first, Level.WARNING, "e1")
        )
    )
    broken = blocked.queue(lambda: store.apply_transitions([first.id], failing))
    ok_after = blocked.queue(
        lambda: store.apply_transitions(
            [second.id], to_level(second, Level.WARNING, "e2")
        )
    )
    blocked.release()

    assert ok_before.result(10).deliveries == 0
    with pytest.raises(RuntimeError, match="decide failed"):
        broken.result(10)
    assert ok_after.result(10).deliveries == 0
    assert commits(statements) == 2  # the blocked request's group, then this one
    assert any(text.startswith("ROLLBACK TO") for text in statements)
    first_state = store.get_disk_state(first.id)
    second_state = store.get_disk_state(second.id)
    assert first_state is not None
    assert first_state.level is Level.WARNING
    assert second_state is not None
    assert second_state.level is Level.WARNING


def test_failing_statement_rolls_back_alone(
    store: SQLiteStore, pool: ThreadPoolExecutor
) -> None:
    first, second = disk("first"), disk("second")
    store.apply_transitions([first.id], to_level(first, Level.WARNING, "taken"))
    third = disk("third")
    blocked = BlockedCommitter(store, pool)

    before = blocked.queue(
        lambda: store.apply_transitions([third.id], to_level(third, Level.WARNING))
    )
    # The event id is taken, so this request's INSERT fails in SQLite.
    duplicate = blocked.queue(
        lambda: store.apply_transitions(
            [second.id], to_level(second, Level.WARNING, "taken")
        )
    )
    other = blocked.queue(
        lambda: store.apply_transitions(
            [second.id], to_level(second, Level.CRITICAL, "fresh")
        )
    )
    blocked.release()

    with pytest.raises(StoreError, match="apply_transitions failed: UNIQUE"):
        duplicate.result(10)
    before.result(10)
    other.result(10)
    assert store.get_disk_state(third.id) is not None
    state = store.get_disk_state(second.id)
    assert state is not None
    assert state.level is Level.CRITICAL


def test_same_disk_in_order(store: SQLiteStore, pool: ThreadPoolExecutor) -> None:
    key = disk("data")
    seen: list[Level | None] = []

    def observing(level: Level) -> Decide:
        def decide(current: Mapping[str, DiskState]) -> Transitions:
            stored = current.get(key.id)
            seen.append(stored.level if stored else None)
            return Transitions(states=[DiskState(disk=key, level=level)])

        return decide

    blocked = BlockedCommitter(store, pool)
    statements = trace(store)
    futures = [
        blocked.queue(
            lambda level=level: store.apply_transitions([key.id], observing(level))
        )
        for level in (Level.WARNING, Level.CRITICAL, Level.OK)
    ]
    blocked.release()
    for future in futures:
        future.result(10)

    assert seen == [None, Level.WARNING, Level.CRITICAL]
    assert commits(statements) == 2
    state = store.get_disk_state(key.id)
    assert state is not None
    assert state.level is Level.OK


class CommitFails:
    """A connection whose COMMIT fails as on a full disk, after rolling back."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    @property
    def in_transaction(self) -> bool:
        return self.real.in_transaction

    def execute(self, sql: str, *parameters: Any) -> sqlite3.Cursor:
        if sql == "COMMIT":
            # SQLite rolls back by itself on SQLITE_FULL during a commit.
            self.real.execute("ROLLBACK")
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.execute(sql, *parameters)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self.real.executemany(sql, rows)


def test_commit_failure_fails_all_then_recovers(
    store: SQLiteStore, pool: ThreadPoolExecutor
) -> None:
    store.create_integration(Integration(id="hook", type="health.webhook"))
    keys = [disk(f"d{index}") for index in range(3)]
    blocked = BlockedCommitter(store, pool)
    real = store._db
    futures = [
        blocked.queue(
            lambda key=key: store.apply_transitions(
                [key.id], to_level(key, Level.WARNING, f"event-{key.id}")
            )
        )
        for key in keys
    ]
    # The blocked group already runs on the real connection; the next one,
    # the three messages, meets the full disk.
    store._committer._db = CommitFails(real)  # type: ignore[assignment]
    blocked.release()

    for future in futures:
        with pytest.raises(StoreError, match="database or disk is full"):
            future.result(10)
    store._committer._db = real
    assert all(store.get_disk_state(key.id) is None for key in keys)
    assert store.list_deliveries() == []

    # Space is back: the same message commits.
    again = store.apply_transitions(
        [keys[0].id], to_level(keys[0], Level.WARNING, "retried")
    )
    assert again.deliveries == 1
    assert [item.status for item in store.list_deliveries()] == [PENDING]


def test_async_requests_share_a_commit(store: SQLiteStore) -> None:
    keys = [disk(f"d{index}") for index in range(20)]
    statements = trace(store)

    async def main() -> list[int]:
        results = await asyncio.gather(
            *(
                store.apply_transitions_async(
                    [key.id], to_level(key, Level.WARNING, f"event-{index}")
                )
                for index, key in enumerate(keys)
            )
        )
        return [len(result.events) for result in results]

    assert asyncio.run(main()) == [1] * 20
    # The first request can be committed alone while the others queue.
    assert commits(statements) < 20
    assert all(store.get_disk_state(key.id) is not None for key in keys)


def test_outcomes_are_committed_in_groups(
    store: SQLiteStore, pool: ThreadPoolExecutor
) -> None:
    store.create_integration(Integration(id="hook", type="health.webhook"))
    keys = [disk(f"d{index}") for index in range(3)]
    for index, key in enumerate(keys):
        store.apply_transitions([key.id], to_level(key, Level.WARNING, f"e{index}"))
    ids = [item.id for item in store.list_deliveries()]
    blocked = BlockedCommitter(store, pool)
    statements = trace(store)
    now = datetime.now(UTC)

    futures = [
        blocked.queue(
            lambda delivery_id=delivery_id: store.mark_delivered(delivery_id, now, None)
        )
        for delivery_id in ids[:2]
    ]
    futures.append(
        blocked.queue(lambda: store.mark_retry(ids[2], now, "receiver answered 503"))
    )
    blocked.release()
    for future in futures:
        future.result(10)

    assert commits(statements) == 2
    by_id = {item.id: item for item in store.list_deliveries()}
    assert [by_id[delivery_id].status for delivery_id in ids[:2]] == [DELIVERED] * 2
    assert by_id[ids[2]].status == PENDING
    assert by_id[ids[2]].last_error == "receiver answered 503"


def test_closed_store_rejects_requests(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "bridge.db")
    key = disk("data")
    store.apply_transitions([key.id], to_level(key, Level.WARNING))
    store.close()

    with pytest.raises(StoreError, match="the store is closed"):
        store.apply_transitions([key.id], to_level(key, Level.OK))
