"""Tests of `GroupCommitter` on its own, on a real SQLite file.

Each test keeps the committer's thread inside a first request until it
has queued the requests it needs, so the order of events is known.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.store.base import StoreError
from bridge.store.committer import GroupCommitter


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(
        tmp_path / "committer.db", isolation_level=None, check_same_thread=False
    )
    connection.execute("CREATE TABLE items (name TEXT NOT NULL)")
    yield connection
    connection.close()


def insert(name: str) -> Callable[[sqlite3.Connection], str]:
    def work(db: sqlite3.Connection) -> str:
        db.execute("INSERT INTO items (name) VALUES (?)", (name,))
        return name

    return work


def held_until(
    gate: threading.Event, entered: threading.Event
) -> Callable[[sqlite3.Connection], None]:
    def work(db: sqlite3.Connection) -> None:
        entered.set()
        assert gate.wait(10)

    return work


def names(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("SELECT name FROM items ORDER BY rowid")]


def test_close_commits_queued_requests(db: sqlite3.Connection) -> None:
    committer = GroupCommitter(db, threading.Lock())
    gate, entered = threading.Event(), threading.Event()
    first = committer.submit("held", held_until(gate, entered))
    assert entered.wait(10)
    queued = [committer.submit(name, insert(name)) for name in ("a", "b")]

    closing = threading.Thread(target=committer.close)
    closing.start()
    closing.join(0.2)
    still_closing = closing.is_alive()
    gate.set()
    closing.join(10)

    assert still_closing, "close returned before the held request finished"
    assert not closing.is_alive()
    assert first.result(0) is None
    assert [future.result(0) for future in queued] == ["a", "b"]
    assert names(db) == ["a", "b"]
    with pytest.raises(StoreError, match="SQLite late failed: the store is closed"):
        committer.submit("late", insert("late"))


def test_cancelled_request_is_skipped(db: sqlite3.Connection) -> None:
    committer = GroupCommitter(db, threading.Lock())
    gate, entered = threading.Event(), threading.Event()
    committer.submit("held", held_until(gate, entered))
    assert entered.wait(10)
    cancelled = committer.submit("cancelled", insert("cancelled"))
    later = committer.submit("later", insert("later"))

    assert cancelled.cancel()
    gate.set()
    committer.close()

    assert cancelled.cancelled()
    assert later.result(0) == "later"
    assert names(db) == ["later"]
