"""Tests of the statvfs prober: timeouts, hung calls and thread bounds."""

from __future__ import annotations

import errno
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.statvfs import Request, StatvfsProber

HUNG = b"/hung"


class BlockingStatvfs:
    """A statvfs that blocks on paths starting with /hung until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: dict[bytes, int] = {}
        self._lock = threading.Lock()

    def __call__(self, path: bytes) -> os.statvfs_result:
        with self._lock:
            self.calls[path] = self.calls.get(path, 0) + 1
        if path.startswith(HUNG):
            self.release.wait()
        if path == b"/missing":
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return os.statvfs_result((4096, 4096, 100, 50, 40, 10, 5, 5, 0, 255))


def statvfs_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "statvfs")


@pytest.fixture
def blocking() -> Iterator[BlockingStatvfs]:
    """A blocking statvfs; every test starts and ends with no statvfs thread."""
    assert statvfs_threads() == 0
    statvfs = BlockingStatvfs()
    yield statvfs
    statvfs.release.set()


@pytest.fixture
def make_prober(blocking: BlockingStatvfs) -> Iterator[Callable[..., StatvfsProber]]:
    """Return a factory of probers on the blocking statvfs, closed afterwards."""
    probers: list[StatvfsProber] = []

    def make(**options: Any) -> StatvfsProber:
        prober = StatvfsProber(blocking, **options)
        probers.append(prober)
        return prober

    yield make
    for prober in probers:
        prober.close()
    blocking.release.set()
    deadline = time.monotonic() + 2
    while statvfs_threads() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_probe_returns_statvfs_and_errors(
    blocking: BlockingStatvfs, make_prober: Callable[..., StatvfsProber]
) -> None:
    prober = make_prober(timeout=0.3, deadline=1.0)
    requests = [Request(b"/ok"), Request(b"/missing")]

    results = prober.probe(requests)
    prober.close()

    assert results[requests[0]].statvfs is not None
    assert results[requests[0]].statvfs.f_blocks == 100
    assert results[requests[0]].error is None
    assert results[requests[1]].statvfs is None
    assert results[requests[1]].error == "No such file or directory"


def test_hung_path_times_out_others_answer(
    blocking: BlockingStatvfs, make_prober: Callable[..., StatvfsProber]
) -> None:
    prober = make_prober(timeout=0.3, deadline=1.0)
    requests = [Request(b"/a"), Request(HUNG), Request(b"/b"), Request(b"/c")]

    started = time.monotonic()
    results = prober.probe(requests)
    elapsed = time.monotonic() - started

    assert elapsed < 0.8
    assert results[Request(HUNG)].error == "statvfs timed out after 0.3 s"
    for path in (b"/a", b"/b", b"/c"):
        assert results[Request(path)].statvfs is not None
    assert prober.pending_calls == 1
    prober.close()


def test_hung_path_not_called_again(
    blocking: BlockingStatvfs, make_prober: Callable[..., StatvfsProber]
) -> None:
    prober = make_prober(timeout=0.2, deadline=1.0)
    requests = [Request(b"/a"), Request(HUNG)]
    prober.probe(requests)

    for _ in range(20):
        started = time.monotonic()
        results = prober.probe(requests)
        assert time.monotonic() - started < 0.15
        assert results[Request(HUNG)].error is not None
        assert results[Request(b"/a")].statvfs is not None

    assert blocking.calls[HUNG] == 1
    assert blocking.calls[b"/a"] == 21
    # The worker blocked in the hung call and its one replacement.
    assert statvfs_threads() == 2

    blocking.release.set()
    deadline = time.monotonic() + 2
    while prober.pending_calls and time.monotonic() < deadline:
        time.sleep(0.01)
    results = prober.probe(requests)

    assert results[Request(HUNG)].statvfs is not None
    assert blocking.calls[HUNG] == 2
    prober.close()


def test_many_hung_paths_keep_threads_bounded(
    blocking: BlockingStatvfs, make_prober: Callable[..., StatvfsProber]
) -> None:
    prober = make_prober(timeout=0.05, deadline=0.5, max_stuck=3)
    requests = [Request(HUNG + b"%d" % index) for index in range(10)]
    requests.append(Request(b"/ok"))

    for _ in range(5):
        started = time.monotonic()
        results = prober.probe(requests)
        assert time.monotonic() - started < 0.7
        assert len(results) == len(requests)

    # One worker plus at most max_stuck threads blocked in hung calls.
    assert statvfs_threads() <= 1 + 3
    assert sum(blocking.calls.get(request.path, 0) for request in requests[:10]) <= 4
    for request in requests[:10]:
        assert results[request].error is not None
    assert results[requests[-1]].error == (
        "statvfs not called: 4 earlier calls are still blocked, the maximum"
    )

    blocking.release.set()
    time.sleep(0.1)
    results = prober.probe(requests)
    assert all(result.statvfs is not None for result in results.values())
    prober.close()


def test_newly_hung_paths_past_deadline_converge(
    blocking: BlockingStatvfs, make_prober: Callable[..., StatvfsProber]
) -> None:
    # Five mounts of one dead server, listed before a healthy one: the first
    # scrape reaches its deadline before the healthy path is tried.
    prober = make_prober(timeout=0.1, deadline=0.25)
    requests = [Request(HUNG + b"%d" % index) for index in range(5)]
    requests.append(Request(b"/ok"))

    outcomes = []
    for _ in range(5):
        results = prober.probe(requests)
        outcomes.append(results[Request(b"/ok")].statvfs is not None)

    assert outcomes[0] is False
    assert outcomes[-2:] == [True, True]
    for index in range(5):
        assert blocking.calls[HUNG + b"%d" % index] == 1
    prober.close()


def test_close_stops_worker_threads(
    blocking: BlockingStatvfs, make_prober: Callable[..., StatvfsProber]
) -> None:
    prober = make_prober(timeout=0.3, deadline=1.0, workers=2)
    prober.probe([Request(b"/a"), Request(b"/b")])
    assert statvfs_threads() == 2

    prober.close()
    deadline = time.monotonic() + 2
    while statvfs_threads() and time.monotonic() < deadline:
        time.sleep(0.01)

    assert statvfs_threads() == 0


def test_path_with_nul_byte_is_error() -> None:
    prober = StatvfsProber(timeout=1.0, deadline=2.0)
    request = Request(b"/a\0b")

    first = prober.probe([request])
    second = prober.probe([request])
    prober.close()

    assert first[request].error == "statvfs: embedded null character in path"
    assert second[request].error == "statvfs: embedded null character in path"
    assert prober.pending_calls == 0


def test_directory_check_rejects_file(tmp_path: Path) -> None:
    regular = tmp_path / "hosts"
    regular.write_text("127.0.0.1 localhost\n", encoding="utf-8")
    prober = StatvfsProber(timeout=1.0, deadline=2.0)
    file_request = Request(os.fsencode(regular), check_directory=True)
    dir_request = Request(os.fsencode(tmp_path), check_directory=True)

    results = prober.probe([file_request, dir_request])
    prober.close()

    assert results[file_request].not_directory
    assert results[file_request].statvfs is None
    assert results[dir_request].statvfs is not None


def test_probe_of_1000_paths_is_fast(tmp_path: Path) -> None:
    for index in range(1000):
        (tmp_path / str(index)).mkdir()
    requests = [Request(os.fsencode(tmp_path / str(index))) for index in range(1000)]
    prober = StatvfsProber()
    prober.probe(requests)

    started = time.perf_counter()
    for _ in range(5):
        results = prober.probe(requests)
    per_scrape = (time.perf_counter() - started) / 5
    prober.close()

    assert all(result.statvfs is not None for result in results.values())
    # A budget far above the measured 3 ms, so that only a design regression
    # such as a thread per path fails it.
    assert per_scrape < 0.1
