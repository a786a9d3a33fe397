"""The embedded store: one SQLite file in WAL mode.

Durability: ``synchronous=FULL`` makes every commit wait for the WAL to
reach the disk, so a message answered 2xx survives a power cut, not only a
crash of the process (with ``NORMAL`` in WAL mode, the last commits can be
lost on power failure; see https://sqlite.org/pragma.html#pragma_synchronous).

Concurrency: writes use one connection guarded by a lock, so they are
serialized in the process, and ``BEGIN IMMEDIATE`` takes SQLite's write
lock up front so a read-then-write transaction cannot fail half way with
SQLITE_BUSY. Reads outside a transaction use a second, read-only
connection with a lock of its own: in WAL mode it sees the last commit and
never waits for the writer. Every ``sqlite3.Error`` is raised as
`StoreError`.

Group commit: incoming messages and delivery outcomes are committed in
groups by `GroupCommitter` (``bridge/store/committer.py``), with one fsync
per group and the guarantees of one transaction per request.

Secrets of integrations are stored in the file, which is created with mode
0600 before SQLite opens it; SQLite gives its ``-wal`` and ``-shm`` files
the same mode.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from bridge.integrations import Integration, Source
from bridge.model import Event, EventType
from bridge.state import DiskState
from bridge.store.base import (
    DEAD,
    DELIVERED,
    PENDING,
    Committed,
    Decide,
    Delivery,
    DeliverySuperseded,
    IntegrationConflict,
    IntegrationNotFound,
    OutboxStats,
    Pruned,
    StoreError,
)
from bridge.store.codec import (
    event_from_json,
    event_to_json,
    state_from_json,
    state_to_json,
)
from bridge.store.committer import GroupCommitter
from bridge.store.schema import SCHEMA, SCHEMA_VERSION

logger = logging.getLogger(__name__)

# Column lists are constants spliced into queries (hence the S608 waivers);
# every value is a bound parameter.
_DELIVERY_COLUMNS = """
    d.id, d.integration_id, d.integration_type, d.disk_id, d.status,
    d.attempts, d.created_at, d.next_attempt_at, d.last_error, d.delivered_at,
    e.body
"""

P = ParamSpec("P")
R = TypeVar("R")


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """Raise `StoreError` for any sqlite3 error inside ``method``."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {method.__name__} failed: {exc}") from exc

    return wrapper


# Decoded events kept for the due query, which the worker runs after every
# delivery and which returns mostly the same rows each time.
_EVENT_CACHE_SIZE = 1024


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def _moment(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def create_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 if missing, and its folder with 0700.

    Raises:
        StoreError: the folder or file cannot be created.
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL is absent on purpose: an existing file is kept, but its mode
        # is narrowed below in case it was created by hand.
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(descriptor)
        os.chmod(path, 0o600)
    except OSError as exc:
        raise StoreError(
            f"cannot create the store file {str(path)!r}: {exc.strerror}; "
            "choose a writable path with --db or WEBPAAS_DB"
        ) from exc


class SQLiteStore:
    """`Store` on one SQLite file; see the module docstring for guarantees."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._events: dict[str, Event] = {}
        self._events_lock = threading.Lock()
        create_private_file(self.path)
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            (journal_mode,) = self._db.execute("PRAGMA journal_mode=WAL").fetchone()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._db.executescript(SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (SCHEMA_VERSION,),
            )
            # Reads use a connection of their own. In WAL mode a reader sees
            # the last commit and never waits for a writer, so the delivery
            # worker's due query does not queue behind a group's fsync.
            self._reader = sqlite3.connect(
                self.path,
                timeout=busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            self._reader.execute("PRAGMA query_only=1")
            self._read_lock = threading.Lock()
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open the store {str(self.path)!r}: {exc}"
            ) from exc
        self._committer = GroupCommitter(self._db, self._lock)
        if str(journal_mode).lower() != "wal":
            # SQLite keeps the old mode when the VFS has no shared-memory
            # methods, as with SQLite 3.40's unix-dotfile and unix-none VFSes
            # (https://sqlite.org/wal.html). The store still works, but its
            # reads and commits then wait for each other.
            logger.warning(
                "store not in WAL mode path=%r journal_mode=%s; put the store "
                "file on a local filesystem",
                str(self.path),
                journal_mode,
            )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back (SQLITE_FULL, SQLITE_IOERR),
                # and a second ROLLBACK would hide the original error.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._read_lock:
            return self._reader.execute(sql, parameters).fetchall()

    # Group commit -------------------------------------------------------

    def _submit(
        self, name: str, work: Callable[[sqlite3.Connection], R]
    ) -> concurrent.futures.Future[R]:
        return self._committer.submit(name, work)

    def _run(self, name: str, work: Callable[[sqlite3.Connection], R]) -> R:
        return self._submit(name, work).result()

    async def _run_async(self, name: str, work: Callable[[sqlite3.Connection], R]) -> R:
        return await asyncio.wrap_future(self._submit(name, work))

    def _overridden(self, name: str) -> bool:
        # A subclass that replaces a blocking method (tests inject store
        # faults this way) must still be called by its async twin.
        return getattr(type(self), name) is not getattr(SQLiteStore, name)

    async def _blocking(self, method: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(None, method, *args)

    async def _write_async(self, name: str, write: Callable[..., R], *args: Any) -> R:
        """Commit ``write`` through the committer, or run an override in a thread."""
        if self._overridden(name):
            result: R = await self._blocking(getattr(self, name), *args)
            return result
        return await self._run_async(name, lambda db: write(db, *args))

    @_translated
    def close(self) -> None:
        # A store built without __init__ (a test does so) has no committer.
        committer = getattr(self, "_committer", None)
        if committer is not None:
            committer.close()
        with self._lock:
            self._db.close()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            with self._read_lock:
                reader.close()

    @_translated
    def journal_mode(self) -> str:
        return str(self._read("PRAGMA journal_mode")[0][0])

    # Integrations -------------------------------------------------------

    @staticmethod
    def _integration(row: Sequence[Any]) -> Integration:
        return Integration(
            id=row[0],
            type=row[1],
            source=Source(row[2]),
            settings=json.loads(row[3]),
            secrets=json.loads(row[4]),
            created_at=datetime.fromisoformat(row[5]),
            updated_at=datetime.fromisoformat(row[6]),
        )

    _INTEGRATION_COLUMNS = "id, type, source, settings, secrets, created_at, updated_at"

    @_translated
    def list_integrations(self) -> list[Integration]:
        rows = self._read(
            f"SELECT {self._INTEGRATION_COLUMNS} FROM integrations ORDER BY id"  # noqa: S608
        )
        return [self._integration(row) for row in rows]

    @_translated
    def get_integration(self, integration_id: str) -> Integration:
        rows = self._read(
            f"SELECT {self._INTEGRATION_COLUMNS} FROM integrations WHERE id = ?",  # noqa: S608
            (integration_id,),
        )
        if not rows:
            raise IntegrationNotFound(f"no integration has the id {integration_id!r}")
        return self._integration(rows[0])

    def _insert_integration(
        self, db: sqlite3.Connection, integration: Integration, source: Source
    ) -> Integration:
        now = datetime.now(UTC)
        stored = Integration(
            id=integration.id,
            type=integration.type,
            settings=dict(integration.settings),
            secrets=dict(integration.secrets),
            source=source,
            created_at=integration.created_at or now,
            updated_at=now,
        )
        db.execute(
            "INSERT INTO integrations "  # noqa: S608
            f"({self._INTEGRATION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                stored.id,
                stored.type,
                stored.source.value,
                json.dumps(stored.settings),
                json.dumps(stored.secrets),
                stored.created_at.isoformat(),  # type: ignore[union-attr]
                stored.updated_at.isoformat(),  # type: ignore[union-attr]
            ),
        )
        return stored

    @_translated
    def create_integration(self, integration: Integration) -> Integration:
        with self._transaction() as db:
            taken = db.execute(
                "SELECT 1 FROM integrations WHERE id = ?", (integration.id,)
            ).fetchone()
            if taken:
                raise IntegrationConflict(
                    f"an integration with the id {integration.id!r} already exists"
                )
            return self._insert_integration(db, integration, integration.source)

    def _require_api_integration(
        self, db: sqlite3.Connection, integration_id: str
    ) -> datetime:
        """Return the created_at of an API integration, raising otherwise."""
        row = db.execute(
            "SELECT source, created_at FROM integrations WHERE id = ?",
            (integration_id,),
        ).fetchone()
        if row is None:
            raise IntegrationNotFound(f"no integration has the id {integration_id!r}")
        if row[0] == Source.CONFIG.value:
            raise IntegrationConflict(
                f"integration {integration_id!r} is declared in the config file "
                "and is read-only; change it there and restart the bridge"
            )
        return datetime.fromisoformat(row[1])

    @_translated
    def update_integration(self, integration: Integration) -> Integration:
        with self._transaction() as db:
            created_at = self._require_api_integration(db, integration.id)
            db.execute("DELETE FROM integrations WHERE id = ?", (integration.id,))
            kept = Integration(
                id=integration.id,
                type=integration.type,
                settings=integration.settings,
                secrets=integration.secrets,
                created_at=created_at,
            )
            return self._insert_integration(db, kept, Source.API)

    @_translated
    def delete_integration(self, integration_id: str) -> None:
        with self._transaction() as db:
            self._require_api_integration(db, integration_id)
            self._remove_integration(
                db, integration_id, f"integration {integration_id!r} was deleted"
            )

    @staticmethod
    def _remove_integration(
        db: sqlite3.Connection, integration_id: str, reason: str
    ) -> None:
        db.execute("DELETE FROM integrations WHERE id = ?", (integration_id,))
        db.execute("DELETE FROM threads WHERE integration_id = ?", (integration_id,))
        db.execute(
            "UPDATE deliveries SET status = ?, last_error = ? "
            "WHERE integration_id = ? AND status = ?",
            (DEAD, reason, integration_id, PENDING),
        )

    @_translated
    def sync_config_integrations(self, integrations: Sequence[Integration]) -> None:
        wanted = {integration.id: integration for integration in integrations}
        with self._transaction() as db:
            rows = db.execute("SELECT id, source, created_at FROM integrations")
            existing = {row[0]: (row[1], row[2]) for row in rows.fetchall()}
            for integration_id in wanted:
                source = existing.get(integration_id, (None,))[0]
                if source == Source.API.value:
                    raise IntegrationConflict(
                        f"integration id {integration_id!r} in the config file is "
                        "already used by an integration created through the admin "
                        "API; rename it in the config file"
                    )
            for integration_id, (source, _) in existing.items():
                if source == Source.CONFIG.value and integration_id not in wanted:
                    self._remove_integration(
                        db,
                        integration_id,
                        f"integration {integration_id!r} was removed from the "
                        "config file",
                    )
            for integration_id, integration in wanted.items():
                created_at = None
                if integration_id in existing:
                    created_at = datetime.fromisoformat(existing[integration_id][1])
                    db.execute(
                        "DELETE FROM integrations WHERE id = ?", (integration_id,)
                    )
                kept = Integration(
                    id=integration.id,
                    type=integration.type,
                    settings=integration.settings,
                    secrets=integration.secrets,
                    created_at=created_at,
                )
                self._insert_integration(db, kept, Source.CONFIG)

    # Disk state ---------------------------------------------------------

    @_translated
    def get_disk_state(self, disk_id: str) -> DiskState | None:
        rows = self._read("SELECT state FROM disks WHERE id = ?", (disk_id,))
        return state_from_json(rows[0][0]) if rows else None

    def apply_transitions(self, disk_ids: Collection[str], decide: Decide) -> Committed:
        return self._run(
            "apply_transitions",
            lambda db: self._write_transitions(db, disk_ids, decide),
        )

    async def apply_transitions_async(
        self, disk_ids: Collection[str], decide: Decide
    ) -> Committed:
        if self._overridden("apply_transitions"):
            return await self._blocking(self.apply_transitions, disk_ids, decide)
        return await self._run_async(
            "apply_transitions",
            lambda db: self._write_transitions(db, disk_ids, decide),
        )

    @staticmethod
    def _write_transitions(
        db: sqlite3.Connection, disk_ids: Collection[str], decide: Decide
    ) -> Committed:
        now = datetime.now(UTC).timestamp()
        rows = db.execute(
            "SELECT state FROM disks WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(disk_ids)),),
        ).fetchall()
        current = {}
        for (text,) in rows:
            state = state_from_json(text)
            current[state.disk_id] = state

        result = decide(current)

        db.executemany(
            "INSERT INTO disks (id, level, state, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET level = excluded.level, "
            "state = excluded.state, updated_at = excluded.updated_at",
            [
                (state.disk_id, int(state.level), state_to_json(state), now)
                for state in result.states
            ],
        )
        if not result.events:
            return Committed(events=(), deliveries=0)

        db.executemany(
            "INSERT INTO events (id, disk_id, type, body, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                (
                    event.id,
                    event.disk.id,
                    event.type.value,
                    event_to_json(event),
                    now,
                )
                for event in result.events
            ],
        )
        targets = db.execute("SELECT id, type FROM integrations ORDER BY id").fetchall()
        deliveries = [
            (
                event.id,
                integration_id,
                integration_type,
                event.disk.id,
                PENDING,
                now,
                now,
            )
            for event in result.events
            for integration_id, integration_type in targets
        ]
        db.executemany(
            "INSERT INTO deliveries (event_id, integration_id, integration_type, "
            "disk_id, status, created_at, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            deliveries,
        )
        return Committed(events=tuple(result.events), deliveries=len(deliveries))

    # Outbox -------------------------------------------------------------

    @staticmethod
    def _delivery(row: Sequence[Any], event: Event | None = None) -> Delivery:
        created_at = _moment(row[6])
        next_attempt_at = _moment(row[7])
        assert created_at is not None
        assert next_attempt_at is not None
        return Delivery(
            id=row[0],
            integration_id=row[1],
            integration_type=row[2],
            disk_id=row[3],
            status=row[4],
            attempts=row[5],
            created_at=created_at,
            next_attempt_at=next_attempt_at,
            last_error=row[8],
            delivered_at=_moment(row[9]),
            event=event if event is not None else event_from_json(row[10]),
        )

    @_translated
    def due_deliveries(
        self, now: datetime, limit: int, exclude: Collection[int] = ()
    ) -> list[Delivery]:
        # Without INDEXED BY, SQLite 3.40 answers the NOT EXISTS from
        # deliveries_status, scanning every earlier pending row for each
        # candidate: 0.7 s per call with 5,000 pending. The outer deliveries_due walks
        # the rows in ORDER BY order and stops at the LIMIT, where
        # deliveries_status sorts every pending row first (40 ms per call
        # with 10,000 pending, and the worker calls it after each delivery).
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "  # noqa: S608
            "INDEXED BY deliveries_due "
            "JOIN events e ON e.id = d.event_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= ? "
            "AND d.id NOT IN (SELECT value FROM json_each(?)) "
            "AND NOT EXISTS (SELECT 1 FROM deliveries p INDEXED BY deliveries_order "
            "WHERE p.status = 'pending' "
            "AND p.integration_id = d.integration_id AND p.disk_id = d.disk_id "
            "AND p.id < d.id) "
            "ORDER BY d.next_attempt_at, d.id LIMIT ?",
            (_epoch(now), json.dumps(list(exclude)), limit),
        )
        return [self._delivery(row, self._cached_event(row[10])) for row in rows]

    def _cached_event(self, body: str) -> Event:
        # An event's body never changes once written, so equal text means
        # the same event.
        with self._events_lock:
            event = self._events.get(body)
            if event is None:
                event = event_from_json(body)
                if len(self._events) >= _EVENT_CACHE_SIZE:
                    del self._events[next(iter(self._events))]
                self._events[body] = event
            return event

    @_translated
    def next_attempt_at(self) -> datetime | None:
        rows = self._read(
            "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'"
        )
        return _moment(rows[0][0])

    # Outcomes go through the committer, so that the outcomes of deliveries
    # that finish together, and the messages arriving meanwhile, share one
    # commit instead of one fsync each.

    def mark_delivered(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        self._run(
            "mark_delivered",
            lambda db: self._write_delivered(db, delivery_id, now, thread_ref),
        )

    async def mark_delivered_async(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        await self._write_async(
            "mark_delivered", self._write_delivered, delivery_id, now, thread_ref
        )

    @staticmethod
    def _write_delivered(
        db: sqlite3.Connection, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        row = db.execute(
            "UPDATE deliveries SET status = ?, delivered_at = ?, "
            "attempts = attempts + 1, last_error = NULL "
            "WHERE id = ? RETURNING integration_id, disk_id, event_id",
            (DELIVERED, _epoch(now), delivery_id),
        ).fetchone()
        if row is None:
            return
        integration_id, disk_id, event_id = row
        (event_type,) = db.execute(
            "SELECT type FROM events WHERE id = ?", (event_id,)
        ).fetchone()
        if event_type == EventType.ALL_CLEAR.value:
            # The incident is over; the next warning opens a new thread.
            db.execute(
                "DELETE FROM threads WHERE integration_id = ? AND disk_id = ?",
                (integration_id, disk_id),
            )
        elif thread_ref is not None:
            # The integration may have been deleted, with its threads, while
            # the request was in flight, and a new row would outlive it.
            # NOTE: an integration deleted and created again under the same
            # id in that time still gets the thread of the old one.
            db.execute(
                "INSERT INTO threads (integration_id, disk_id, thread_ref) "
                "SELECT ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM integrations WHERE id = ?) "
                "ON CONFLICT (integration_id, disk_id) "
                "DO UPDATE SET thread_ref = excluded.thread_ref",
                (integration_id, disk_id, thread_ref, integration_id),
            )

    def mark_retry(
        self, delivery_id: int, next_attempt_at: datetime, error: str
    ) -> None:
        self._run(
            "mark_retry",
            lambda db: self._write_retry(db, delivery_id, next_attempt_at, error),
        )

    async def mark_retry_async(
        self, delivery_id: int, next_attempt_at: datetime, error: str
    ) -> None:
        await self._write_async(
            "mark_retry", self._write_retry, delivery_id, next_attempt_at, error
        )

    @staticmethod
    def _write_retry(
        db: sqlite3.Connection, delivery_id: int, next_attempt_at: datetime, error: str
    ) -> None:
        db.execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, "
            "last_error = ? WHERE id = ?",
            (_epoch(next_attempt_at), error, delivery_id),
        )

    def mark_dead(self, delivery_id: int, now: datetime, reason: str) -> None:
        self._run(
            "mark_dead", lambda db: self._write_dead(db, delivery_id, now, reason)
        )

    async def mark_dead_async(
        self, delivery_id: int, now: datetime, reason: str
    ) -> None:
        await self._write_async("mark_dead", self._write_dead, delivery_id, now, reason)

    @staticmethod
    def _write_dead(
        db: sqlite3.Connection, delivery_id: int, now: datetime, reason: str
    ) -> None:
        db.execute(
            "UPDATE deliveries SET status = ?, attempts = attempts + 1, "
            "next_attempt_at = ?, last_error = ? WHERE id = ?",
            (DEAD, _epoch(now), reason, delivery_id),
        )

    @_translated
    def get_thread_ref(self, integration_id: str, disk_id: str) -> str | None:
        rows = self._read(
            "SELECT thread_ref FROM threads WHERE integration_id = ? AND disk_id = ?",
            (integration_id, disk_id),
        )
        return rows[0][0] if rows else None

    @_translated
    def list_deliveries(
        self, status: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        rows = self._read(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "  # noqa: S608
            "JOIN events e ON e.id = d.event_id "
            "WHERE (? IS NULL OR d.status = ?) ORDER BY d.id DESC LIMIT ?",
            (status, status, limit),
        )
        return [self._delivery(row) for row in rows]

    @_translated
    def requeue_delivery(self, delivery_id: int, now: datetime) -> Delivery:
        with self._transaction() as db:
            later = db.execute(
                "SELECT later.id FROM deliveries dead JOIN deliveries later "
                "ON later.integration_id = dead.integration_id "
                "AND later.disk_id = dead.disk_id AND later.id > dead.id "
                "WHERE dead.id = ? AND dead.status = ? AND later.status = ? "
                "ORDER BY later.id LIMIT 1",
                (delivery_id, DEAD, DELIVERED),
            ).fetchone()
            if later is not None:
                raise DeliverySuperseded(
                    f"delivery {later[0]}, a later event for the same disk, was "
                    f"already delivered to this integration, so delivery "
                    f"{delivery_id} would arrive out of order; it stays a dead letter"
                )
            changed = db.execute(
                "UPDATE deliveries SET status = ?, next_attempt_at = ?, "
                "created_at = ? WHERE id = ? AND status = ?",
                (PENDING, _epoch(now), _epoch(now), delivery_id, DEAD),
            ).rowcount
            if not changed:
                raise LookupError(f"no dead delivery has the id {delivery_id}")
            row = db.execute(
                f"SELECT {_DELIVERY_COLUMNS} FROM deliveries d "  # noqa: S608
                "JOIN events e ON e.id = d.event_id WHERE d.id = ?",
                (delivery_id,),
            ).fetchone()
        return self._delivery(row)

    @_translated
    def outbox_stats(self, now: datetime) -> OutboxStats:
        rows = self._read(
            "SELECT "
            "(SELECT count(*) FROM deliveries WHERE status = 'pending'), "
            "(SELECT count(*) FROM deliveries WHERE status = 'dead'), "
            "(SELECT min(created_at) FROM deliveries WHERE status = 'pending')"
        )
        pending, dead, oldest = rows[0]
        age = max(0.0, _epoch(now) - oldest) if oldest is not None else 0.0
        return OutboxStats(pending=pending, dead=dead, oldest_pending_age_seconds=age)

    # Retention ----------------------------------------------------------

    def prune(self, before: datetime, limit: int) -> Pruned:
        return self._run("prune", lambda db: self._write_prune(db, before, limit))

    async def prune_async(self, before: datetime, limit: int) -> Pruned:
        return await self._write_async("prune", self._write_prune, before, limit)

    @staticmethod
    def _write_prune(db: sqlite3.Connection, before: datetime, limit: int) -> Pruned:
        cutoff = _epoch(before)
        # Dead letters go first. requeue_delivery rejects a dead letter when
        # a later delivery for its integration and disk was delivered. The
        # worker picked that one only after the dead letter had left the
        # pending state, so it was delivered after the dead letter's
        # created_at. With one cutoff, the later row is therefore never
        # deleted before the dead letter that it supersedes.
        # Without INDEXED BY, SQLite 3.40 walks deliveries_status instead,
        # reading every row of the status.
        dead = db.execute(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries "
            "INDEXED BY deliveries_dead "
            "WHERE status = 'dead' AND created_at < ? LIMIT ?)",
            (cutoff, limit),
        ).rowcount

        delivered = 0
        if dead < limit:
            delivered = db.execute(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries "
                "INDEXED BY deliveries_delivered "
                "WHERE status = 'delivered' AND delivered_at < ? LIMIT ?)",
                (cutoff, limit - dead),
            ).rowcount

        events = 0
        if dead + delivered < limit:
            events = db.execute(
                "DELETE FROM events WHERE rowid IN (SELECT e.rowid FROM events e "
                "INDEXED BY events_created WHERE e.created_at < ? "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d "
                "INDEXED BY deliveries_event WHERE d.event_id = e.id) LIMIT ?)",
                (cutoff, limit - dead - delivered),
            ).rowcount

        return Pruned(deliveries=dead + delivered, events=events)

    @_translated
    def check_writable(self) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('ready_check', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (datetime.now(UTC).isoformat(),),
            )
