"""Tests of the SQLite store: file safety, integrations, state and outbox."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bridge.integrations import Integration, Source
from bridge.model import DiskKey, Event, EventType, Level
from bridge.state import DiskState
from bridge.store.base import (
    DEAD,
    DELIVERED,
    PENDING,
    DeliverySuperseded,
    IntegrationConflict,
    IntegrationNotFound,
    StoreError,
    Transitions,
)
from bridge.store.sqlite import SQLiteStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
DISK = DiskKey.from_alert_labels({"project": "p", "mountpoint": "/data"})
OTHER_DISK = DiskKey.from_alert_labels({"project": "p", "mountpoint": "/logs"})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "state" / "bridge.db")
    yield opened
    opened.close()


def slack(integration_id: str = "ops", source: Source = Source.API) -> Integration:
    return Integration(
        id=integration_id,
        type="health.slack",
        settings={"channel": "#ops"},
        secrets={"token": "xoxb-secret-token-1234"},
        source=source,
    )


def event(event_id: str, disk: DiskKey = DISK, level: Level = Level.WARNING) -> Event:
    previous = Level.OK if level is not Level.OK else Level.WARNING
    return Event(
        id=event_id,
        type=EventType.for_transition(previous, level),
        disk=disk,
        level=level,
        previous_level=previous,
        occurred_at=T0,
        free_percent="15.5" if level is not Level.OK else None,
        starts_at=T0,
    )


def commit_events(store: SQLiteStore, *events: Event) -> int:
    def decide(current: Mapping[str, DiskState]) -> Transitions:
        states = [DiskState(disk=item.disk, level=item.level) for item in events]
        return Transitions(states=states, events=events)

    disk_ids = {item.disk.id for item in events}
    return store.apply_transitions(disk_ids, decide).deliveries


def test_store_file_mode_0600_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "new" / "bridge.db"
    store = SQLiteStore(path)
    store.create_integration(slack())

    mode = stat.S_IMODE(path.stat().st_mode)
    folder_mode = stat.S_IMODE(path.parent.stat().st_mode)
    wal_mode = stat.S_IMODE(Path(f"{path}-wal").stat().st_mode)
    journal = store.journal_mode()
    store.close()

    assert mode == 0o600
    assert folder_mode == 0o700
    assert wal_mode == 0o600
    assert journal == "wal"


def test_store_narrows_existing_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)

    SQLiteStore(path).close()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_unwritable_folder_names_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(StoreError, match="WEBPAAS_DB"):
        SQLiteStore(blocker / "bridge.db")


def test_integration_crud_round_trip(store: SQLiteStore) -> None:
    created = store.create_integration(slack())
    listed = store.list_integrations()
    fetched = store.get_integration("ops")

    assert created.created_at is not None
    assert created.updated_at is not None
    assert [item.id for item in listed] == ["ops"]
    assert fetched.secrets == {"token": "xoxb-secret-token-1234"}
    assert fetched.settings == {"channel": "#ops"}
    assert fetched.source is Source.API
    assert fetched.created_at == created.created_at


def test_integration_update_keeps_created_at(store: SQLiteStore) -> None:
    created = store.create_integration(slack())
    changed = slack()
    changed.settings = {"channel": "#other"}

    updated = store.update_integration(changed)

    assert updated.created_at == created.created_at
    assert store.get_integration("ops").settings == {"channel": "#other"}


def test_integration_create_duplicate_id(store: SQLiteStore) -> None:
    store.create_integration(slack())

    with pytest.raises(IntegrationConflict, match="'ops' already exists"):
        store.create_integration(slack())


@pytest.mark.parametrize("method", ["get", "update", "delete"])
def test_integration_unknown_id(store: SQLiteStore, method: str) -> None:
    calls = {
        "get": lambda: store.get_integration("nope"),
        "update": lambda: store.update_integration(slack("nope")),
        "delete": lambda: store.delete_integration("nope"),
    }

    with pytest.raises(IntegrationNotFound, match="'nope'"):
        calls[method]()


def test_config_integrations_read_only(store: SQLiteStore) -> None:
    store.sync_config_integrations([slack("from-config", Source.CONFIG)])

    with pytest.raises(IntegrationConflict, match="config file"):
        store.update_integration(slack("from-config"))
    with pytest.raises(IntegrationConflict, match="config file"):
        store.delete_integration("from-config")
    assert store.get_integration("from-config").source is Source.CONFIG


def test_config_sync_removes_dropped_ones(store: SQLiteStore) -> None:
    store.sync_config_integrations(
        [slack("a", Source.CONFIG), slack("b", Source.CONFIG)]
    )
    commit_events(store, event("e1"))

    store.sync_config_integrations([slack("b", Source.CONFIG)])

    assert [item.id for item in store.list_integrations()] == ["b"]
    dead = store.list_deliveries(DEAD)
    assert [(item.integration_id, item.last_error) for item in dead] == [
        ("a", "integration 'a' was removed from the config file")
    ]


def test_config_sync_conflicts_with_api_id(store: SQLiteStore) -> None:
    store.create_integration(slack("ops"))

    with pytest.raises(IntegrationConflict, match="rename it in the config file"):
        store.sync_config_integrations([slack("ops", Source.CONFIG)])


def test_delete_integration_kills_its_pending(store: SQLiteStore) -> None:
    store.create_integration(slack("ops"))
    commit_events(store, event("e1"))

    store.delete_integration("ops")

    dead = store.list_deliveries(DEAD)
    assert [item.last_error for item in dead] == ["integration 'ops' was deleted"]
    assert store.list_deliveries(PENDING) == []


def test_transition_writes_one_delivery_per_integration(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    store.create_integration(slack("b"))

    count = commit_events(store, event("e1"), event("e2", OTHER_DISK))

    assert count == 4
    pending = store.list_deliveries(PENDING)
    assert sorted((item.event.id, item.integration_id) for item in pending) == [
        ("e1", "a"),
        ("e1", "b"),
        ("e2", "a"),
        ("e2", "b"),
    ]
    assert store.get_disk_state(DISK.id) == DiskState(disk=DISK, level=Level.WARNING)


def test_transition_rolls_back_on_error(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))

    def decide(current: Mapping[str, DiskState]) -> Transitions:
        raise RuntimeError("decide failed")

    with pytest.raises(RuntimeError):
        store.apply_transitions([DISK.id], decide)
    commit_events(store, event("e1"))

    assert len(store.list_deliveries()) == 1


def test_event_round_trips_through_outbox(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    original = event("e1")
    commit_events(store, original)

    (delivery,) = store.due_deliveries(T0 + timedelta(days=3650), limit=10)

    assert delivery.event == original
    assert delivery.status == PENDING
    assert delivery.attempts == 0


def test_due_deliveries_keep_disk_order(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    commit_events(store, event("warn"))
    commit_events(store, event("clear", level=Level.OK))
    commit_events(store, event("other", OTHER_DISK))
    later = datetime.now(UTC) + timedelta(seconds=1)

    first = store.due_deliveries(later, limit=10)
    assert [item.event.id for item in first] == ["warn", "other"]

    store.mark_retry(first[0].id, later + timedelta(hours=1), "HTTP 503")
    blocked = store.due_deliveries(later, limit=10, exclude=[first[1].id])
    assert blocked == []

    store.mark_delivered(first[0].id, later, thread_ref="1700000000.0001")
    after = store.due_deliveries(later, limit=10, exclude=[first[1].id])
    assert [item.event.id for item in after] == ["clear"]


def test_disk_order_is_per_integration(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    store.create_integration(slack("b"))
    commit_events(store, event("warn"))
    commit_events(store, event("clear", level=Level.OK))
    later = datetime.now(UTC) + timedelta(seconds=1)
    warnings = {item.integration_id: item for item in store.due_deliveries(later, 10)}

    # "a" keeps failing while "b" delivers: only b's all-clear may follow.
    store.mark_retry(warnings["a"].id, later + timedelta(hours=1), "HTTP 503")
    store.mark_delivered(warnings["b"].id, later, thread_ref=None)
    due = store.due_deliveries(later, limit=10)

    assert sorted(warnings) == ["a", "b"]
    assert [(item.integration_id, item.event.id) for item in due] == [("b", "clear")]


def test_thread_ref_kept_until_all_clear(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    commit_events(store, event("warn"))
    commit_events(store, event("clear", level=Level.OK))
    now = datetime.now(UTC) + timedelta(seconds=1)

    (warn,) = store.due_deliveries(now, limit=10)
    store.mark_delivered(warn.id, now, thread_ref="1700000000.0001")
    kept = store.get_thread_ref("a", DISK.id)
    (clear,) = store.due_deliveries(now, limit=10)
    store.mark_delivered(clear.id, now, thread_ref=None)

    assert kept == "1700000000.0001"
    assert store.get_thread_ref("a", DISK.id) is None
    assert [item.status for item in store.list_deliveries()] == [DELIVERED, DELIVERED]


def test_dead_letter_and_requeue(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    commit_events(store, event("e1"))
    now = datetime.now(UTC) + timedelta(seconds=1)
    (delivery,) = store.due_deliveries(now, limit=10)

    store.mark_dead(delivery.id, now, "Slack rejected the token: invalid_auth")
    stats = store.outbox_stats(now)
    requeued = store.requeue_delivery(delivery.id, now)

    assert stats.dead == 1
    assert stats.pending == 0
    assert requeued.status == PENDING
    assert requeued.last_error == "Slack rejected the token: invalid_auth"
    with pytest.raises(LookupError, match="no dead delivery"):
        store.requeue_delivery(delivery.id, now)


def test_requeue_after_later_delivery_rejected(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    commit_events(store, event("e1"))
    commit_events(store, event("e2", level=Level.OK))
    now = datetime.now(UTC) + timedelta(seconds=1)
    (warning,) = store.due_deliveries(now, limit=10)
    store.mark_dead(warning.id, now, "Slack could not post: channel_not_found")
    (all_clear,) = store.due_deliveries(now, limit=10)
    store.mark_delivered(all_clear.id, now, None)

    with pytest.raises(DeliverySuperseded) as raised:
        store.requeue_delivery(warning.id, now)

    assert str(raised.value).startswith(f"delivery {all_clear.id}, a later event")
    assert [item.id for item in store.list_deliveries(DEAD)] == [warning.id]
    assert store.list_deliveries(PENDING) == []


def test_requeue_ignores_other_disks(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    commit_events(store, event("e1"))
    commit_events(store, event("e2", disk=OTHER_DISK))
    now = datetime.now(UTC) + timedelta(seconds=1)
    first, second = store.due_deliveries(now, limit=10)
    store.mark_dead(first.id, now, "final")
    store.mark_delivered(second.id, now, None)

    requeued = store.requeue_delivery(first.id, now)

    assert requeued.status == PENDING


def test_outbox_stats_oldest_age(store: SQLiteStore) -> None:
    store.create_integration(slack("a"))
    commit_events(store, event("e1"))

    stats = store.outbox_stats(datetime.now(UTC) + timedelta(seconds=30))

    assert stats.pending == 1
    assert 29 <= stats.oldest_pending_age_seconds <= 32


def test_restart_keeps_state_and_outbox(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    first = SQLiteStore(path)
    first.create_integration(slack("a"))
    commit_events(first, event("e1"))
    first.close()

    second = SQLiteStore(path)
    state = second.get_disk_state(DISK.id)
    pending = second.list_deliveries(PENDING)
    second.close()

    assert state is not None
    assert state.level is Level.WARNING
    assert [item.event.id for item in pending] == ["e1"]


def test_sqlite_errors_become_store_error(store: SQLiteStore) -> None:
    store.close()

    with pytest.raises(StoreError, match="list_integrations failed"):
        store.list_integrations()


def test_check_writable_on_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    SQLiteStore(path).close()
    readonly = SQLiteStore.__new__(SQLiteStore)
    readonly.path = path
    readonly._lock = __import__("threading").Lock()
    readonly._db = sqlite3.connect(
        f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )

    with pytest.raises(StoreError, match="check_writable failed"):
        readonly.check_writable()
    readonly.close()


def test_due_event_cache_bounded(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bridge.store.sqlite._EVENT_CACHE_SIZE", 2)
    store.create_integration(slack())
    disks = [
        DiskKey.from_alert_labels({"project": "p", "mountpoint": f"/d{index}"})
        for index in range(3)
    ]
    commit_events(
        store, *(event(f"e{index}", disk) for index, disk in enumerate(disks))
    )
    later = T0 + timedelta(days=3650)

    first = store.due_deliveries(later, limit=2)
    second = store.due_deliveries(later, limit=2)
    everything = store.due_deliveries(later, limit=10)

    assert [item.event.id for item in first] == ["e0", "e1"]
    assert first[0].event is second[0].event
    assert first[1].event is second[1].event
    assert [item.event.id for item in everything] == ["e0", "e1", "e2"]
    assert everything[2].event == event("e2", disks[2])
    assert len(store._events) == 2


def test_read_does_not_wait_for_open_group(store: SQLiteStore) -> None:
    store.create_integration(slack())
    commit_events(store, event("e1"))
    later = T0 + timedelta(days=3650)
    (pending,) = store.due_deliveries(later, limit=10)
    inside = threading.Event()
    release = threading.Event()

    def held(db: sqlite3.Connection) -> None:
        db.execute(
            "UPDATE deliveries SET status = ? WHERE id = ?", (DELIVERED, pending.id)
        )
        store._insert_integration(db, slack("late"), Source.API)
        inside.set()
        # Bounded, so that a failing test cannot leave the committer stuck.
        release.wait(30)

    group = store._submit("held", held)
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        assert inside.wait(5), "the committer did not start the held group"
        due = pool.submit(store.due_deliveries, later, 10)
        listed = pool.submit(store.list_integrations)
        try:
            due_during = due.result(timeout=3)
            listed_during = listed.result(timeout=3)
        except TimeoutError:
            pytest.fail("a read waited for the committer's open group")
    finally:
        release.set()
        pool.shutdown()
    group.result(timeout=5)

    assert [item.id for item in due_during] == [pending.id]
    assert [item.id for item in listed_during] == ["ops"]
    assert store.due_deliveries(later, limit=10) == []
    assert [item.id for item in store.list_integrations()] == ["late", "ops"]


def test_delivered_after_delete_keeps_no_thread(store: SQLiteStore) -> None:
    store.create_integration(slack())
    commit_events(store, event("e1"))
    now = datetime.now(UTC) + timedelta(seconds=1)
    (in_flight,) = store.due_deliveries(now, limit=10)

    # Deleted while the request was in flight, which the target then accepted.
    store.delete_integration("ops")
    store.mark_delivered(in_flight.id, now, thread_ref="1700000000.0001")

    with sqlite3.connect(store.path) as other:
        threads = other.execute("SELECT * FROM threads").fetchall()
    assert threads == []
    assert [item.status for item in store.list_deliveries()] == [DELIVERED]


def test_store_without_wal_warns_and_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bridge.db"
    real_connect = sqlite3.connect

    def connect_without_shared_memory(
        database: Path, **options: Any
    ) -> sqlite3.Connection:
        # SQLite's unix-dotfile VFS has no shared-memory methods, so SQLite
        # keeps the rollback journal, as it does on any such VFS.
        uri = f"file:{database}?vfs=unix-dotfile"
        return real_connect(uri, uri=True, **options)

    monkeypatch.setattr(sqlite3, "connect", connect_without_shared_memory)
    caplog.set_level(logging.WARNING, logger="bridge.store.sqlite")

    store = SQLiteStore(path)
    try:
        mode = store.journal_mode()
        store.create_integration(slack())
        commit_events(store, event("e1"))
        due = store.due_deliveries(datetime.now(UTC) + timedelta(seconds=1), 10)
    finally:
        store.close()

    assert mode == "delete"
    assert len(due) == 1
    assert [record.getMessage() for record in caplog.records] == [
        f"store not in WAL mode path={str(path)!r} journal_mode=delete; put the "
        "store file on a local filesystem"
    ]


def test_store_in_wal_mode_logs_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.store.sqlite")

    store = SQLiteStore(tmp_path / "bridge.db")
    mode = store.journal_mode()
    store.close()

    assert mode == "wal"
    assert caplog.records == []
