"""The group committer of the SQLite store: many requests, one commit.

Group commit: incoming messages and delivery outcomes go to one committer
thread, which takes every request waiting in its queue, runs each in its
own ``SAVEPOINT`` of one transaction, in the order they arrived, and then
commits once. A request's caller gets its result only after that commit
reached the disk, so the guarantee is the one of a transaction per
request, with one fsync for the whole group. A request that fails rolls
back to its savepoint and fails alone; a failed commit fails every request
of the group with `StoreError`, and the next group starts afresh.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bridge.store.base import StoreError

logger = logging.getLogger(__name__)

R = TypeVar("R")

# Requests per group: a bound on how long the write lock is held at once,
# and so on how long an admin write or a request of the next group waits.
_GROUP_LIMIT = 256


@dataclass
class _Request:
    """One unit of work for the committer and the future its caller waits on."""

    name: str
    work: Callable[[sqlite3.Connection], Any]
    future: concurrent.futures.Future[Any]


def _store_error(name: str, exc: sqlite3.Error) -> StoreError:
    error = StoreError(f"SQLite {name} failed: {exc}")
    error.__cause__ = exc
    return error


class GroupCommitter:
    """Committer of one write connection, which applies queued requests in groups.

    Its thread starts with the first request. ``lock`` must be the lock that
    guards ``db`` for every other writer, because the committer holds it for
    the whole of a group. A caller that gave up before its group started (a
    cancelled await) is skipped. `close` still commits every request queued
    before it, and `submit` raises `StoreError` after it.
    """

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()
        self._closed = False

    def submit(
        self, name: str, work: Callable[[sqlite3.Connection], R]
    ) -> concurrent.futures.Future[R]:
        """Queue ``work`` for the next group; the future resolves after COMMIT."""
        future: concurrent.futures.Future[R] = concurrent.futures.Future()
        with self._thread_lock:
            if self._closed:
                raise StoreError(f"SQLite {name} failed: the store is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._commit_loop, name="sqlite-committer", daemon=True
                )
                self._thread.start()
            self._queue.put(_Request(name, work, future))
        return future

    def close(self) -> None:
        """Commit the requests queued so far, then stop the thread."""
        with self._thread_lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                # Requests queued before this one are still committed.
                self._queue.put(None)
        if thread is not None:
            thread.join()

    def _commit_loop(self) -> None:
        group: list[_Request] = []
        stopping = False
        while not stopping or group:
            if not group and not stopping:
                item = self._queue.get()
                if item is None:
                    return
                self._take(group, item)
            while not stopping and len(group) < _GROUP_LIMIT:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    self._take(group, item)
            try:
                group = self._commit_group(group)
            except BaseException as exc:
                # Keep the committer alive: a dead one would leave every later
                # caller waiting forever.
                logger.exception("store committer failed")
                with contextlib.suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                for request in group:
                    if not request.future.done():
                        request.future.set_exception(
                            StoreError(f"SQLite {request.name} failed: {exc!r}")
                        )
                group = []

    @staticmethod
    def _take(group: list[_Request], request: _Request) -> None:
        # A caller that gave up before its turn (a cancelled await) is left
        # out, so its request is neither applied nor resolved.
        if request.future.set_running_or_notify_cancel():
            group.append(request)

    def _commit_group(self, group: list[_Request]) -> list[_Request]:
        """Apply and commit ``group``, and return the requests left for a new group.

        Requests are left over only when SQLite dropped the transaction in
        the middle of the group (it does so on SQLITE_FULL or SQLITE_IOERR).
        """
        if not group:
            return []
        applied: list[tuple[_Request, Any]] = []
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                for request in group:
                    request.future.set_exception(_store_error(request.name, exc))
                return []
            for index, request in enumerate(group):
                try:
                    db.execute("SAVEPOINT request")
                    result = request.work(db)
                    db.execute("RELEASE request")
                except Exception as exc:
                    failure: BaseException = exc
                    if isinstance(exc, sqlite3.Error):
                        failure = _store_error(request.name, exc)
                    if self._roll_back_to_savepoint(db):
                        request.future.set_exception(failure)
                        continue
                    # The whole transaction is gone: the requests applied
                    # before this one were rolled back with it.
                    request.future.set_exception(failure)
                    self._fail(applied, failure)
                    return group[index + 1 :]
                applied.append((request, result))
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                # SQLite may already have rolled back (SQLITE_FULL, SQLITE_IOERR),
                # and a second ROLLBACK would hide the original error.
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                self._fail(applied, exc)
                return []
        for request, result in applied:
            request.future.set_result(result)
        return []

    @staticmethod
    def _roll_back_to_savepoint(db: sqlite3.Connection) -> bool:
        """Undo the current request alone. False means the transaction is gone."""
        if not db.in_transaction:
            return False
        try:
            db.execute("ROLLBACK TO request")
            db.execute("RELEASE request")
        except sqlite3.Error:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            return False
        return True

    @staticmethod
    def _fail(applied: list[tuple[_Request, Any]], cause: BaseException) -> None:
        for request, _ in applied:
            error = StoreError(
                f"SQLite {request.name} failed: the group commit it was part of "
                f"failed: {cause}"
            )
            error.__cause__ = cause
            request.future.set_exception(error)
