"""Run statvfs(2) on many paths without letting a hung filesystem stall a scrape.

statvfs on a network filesystem whose server is gone blocks in the kernel,
and no signal or timeout from user space can cancel it. The only defence is
to make the call in a thread that the scrape does not wait for beyond a
deadline. This module keeps a small fixed set of worker threads that take
paths one at a time from the current scrape:

- Healthy paths cost no thread of their own: ``workers`` threads (one by
  default) probe every path of a scrape in turn. One thread is the fastest
  for healthy mounts, because more threads in CPython mostly contend for the
  GIL: 1,000 directories on tmpfs took about 3 ms per scrape with one
  worker, 4 ms with two and 8 ms with four (a 2-CPU VM, Python 3.11).
- A call that runs past ``timeout`` makes its path an error for this scrape.
  Its worker is counted as stuck and a replacement is started, so the other
  paths go on.
- A path whose earlier call is still running is an error at once and gets no
  new call until that call returns, so a dead mount holds at most one thread
  however often it is scraped.
- Threads are capped at ``workers + max_stuck``, stuck ones included. When
  every thread is stuck at that cap, the remaining paths of the scrape are
  errors.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 2.0
DEFAULT_DEADLINE_SECONDS = 5.0
DEFAULT_WORKERS = 1
DEFAULT_MAX_STUCK = 16

StatvfsFunction = Callable[[bytes], os.statvfs_result]
StatFunction = Callable[[bytes], os.stat_result]


@dataclass(frozen=True)
class Request:
    """One path to probe; ``check_directory`` requests a directory check first.

    Bind mounts of single files (``/etc/hosts`` in a container) are mount
    points that are not directories. The check is made in the worker thread
    because stat(2) can hang on a dead mount just as statvfs can.
    """

    path: bytes
    check_directory: bool = False


@dataclass(frozen=True)
class Result:
    """Outcome of one probe: exactly one of ``statvfs``, ``error`` is set.

    ``not_directory`` is true, with neither set, for a mount point that is a
    file.
    """

    statvfs: os.statvfs_result | None = None
    error: str | None = None
    not_directory: bool = False


@dataclass
class _Scrape:
    requests: list[Request]
    results: dict[Request, Result] = field(default_factory=dict)
    next_index: int = 0
    closed: bool = False


@dataclass
class _Worker:
    thread: threading.Thread | None = None
    request: Request | None = None
    started: float = 0.0
    stuck: bool = False


class StatvfsProber:
    """A pool of threads that runs statvfs with a per-path timeout.

    Args:
        statvfs: the system call, replaceable in tests.
        stat: the stat call for ``check_directory`` requests.
        timeout: seconds one call may take before its path is an error.
        deadline: seconds one scrape may take in total.
        workers: threads that serve scrapes; more are started only to
            replace stuck ones.
        max_stuck: threads that may be left blocked in calls that timed out,
            beyond ``workers``. At most ``workers + max_stuck`` are blocked.
    """

    def __init__(
        self,
        statvfs: StatvfsFunction = os.statvfs,
        stat: StatFunction = os.stat,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        deadline: float = DEFAULT_DEADLINE_SECONDS,
        workers: int = DEFAULT_WORKERS,
        max_stuck: int = DEFAULT_MAX_STUCK,
    ) -> None:
        self._statvfs = statvfs
        self._stat = stat
        self._timeout = timeout
        self._deadline = deadline
        self._worker_count = workers
        self._max_stuck = max_stuck

        self._lock = threading.Lock()
        self._work_ready = threading.Condition(self._lock)
        self._progress = threading.Condition(self._lock)
        # Scrapes run one at a time, because they share the workers.
        self._scrape_lock = threading.Lock()
        self._scrape: _Scrape | None = None
        self._workers: list[_Worker] = []
        self._pending: set[bytes] = set()
        self._closing = False

    @property
    def pending_calls(self) -> int:
        """Calls that timed out and have not returned yet."""
        with self._lock:
            return len(self._pending)

    def probe(self, requests: Sequence[Request]) -> dict[Request, Result]:
        """Probe every request and return a result for each, within the deadline."""
        with self._scrape_lock:
            return self._probe(requests)

    def close(self) -> None:
        """Stop idle workers; threads blocked in a call end when it returns."""
        with self._lock:
            self._closing = True
            self._work_ready.notify_all()

    def _probe(self, requests: Sequence[Request]) -> dict[Request, Result]:
        started = time.monotonic()
        results: dict[Request, Result] = {}
        with self._lock:
            scrape = _Scrape([])
            for request in dict.fromkeys(requests):
                if request.path in self._pending:
                    results[request] = Result(
                        error="statvfs timed out earlier and has not returned"
                    )
                else:
                    scrape.requests.append(request)
            if scrape.requests:
                self._scrape = scrape
                self._start_workers()
                self._work_ready.notify_all()
                reason = "statvfs returned no result before the scrape deadline"
                try:
                    reason = self._wait(scrape, started + self._deadline) or reason
                finally:
                    self._finish(scrape, reason)
        results.update(scrape.results)
        return results

    def _wait(self, scrape: _Scrape, deadline: float) -> str | None:
        """Wait for every result; return why the wait ended early, if it did."""
        while len(scrape.results) < len(scrape.requests):
            now = time.monotonic()
            if now >= deadline:
                return None
            self._mark_stuck(scrape, now)
            self._start_workers()
            if self._active_count() == 0:
                return (
                    f"statvfs not called: {len(self._workers)} earlier calls "
                    "are still blocked, the maximum"
                )

            # A call that starts after now cannot time out before now +
            # timeout, so waking then is never late for an idle worker.
            wake = min(deadline, now + self._timeout)
            for worker in self._workers:
                if worker.request is not None and not worker.stuck:
                    wake = min(wake, worker.started + self._timeout)
            self._progress.wait(max(wake - now, 0.001))
        return None

    def _mark_stuck(self, scrape: _Scrape, now: float) -> None:
        for worker in self._workers:
            request = worker.request
            if request is None or worker.stuck:
                continue
            if now - worker.started < self._timeout:
                continue
            worker.stuck = True
            scrape.results[request] = Result(
                error=f"statvfs timed out after {self._timeout:g} s"
            )
            logger.warning(
                "statvfs on %s timed out after %g s; the path is an error "
                "until the call returns",
                os.fsdecode(request.path),
                self._timeout,
            )

    def _finish(self, scrape: _Scrape, reason: str) -> None:
        scrape.closed = True
        self._scrape = None
        for request in scrape.requests:
            if request not in scrape.results:
                scrape.results[request] = Result(error=reason)

        # A worker still in a call of this scrape is counted as stuck, so
        # that the next scrape starts a replacement instead of waiting for it.
        for worker in self._workers:
            if worker.request is not None:
                worker.stuck = True

    def _start_workers(self) -> None:
        active = self._active_count()
        stuck = len(self._workers) - active
        # Replacements for stuck workers count against max_stuck, so the
        # total never exceeds workers + max_stuck.
        allowed = self._worker_count + self._max_stuck - stuck
        while active < min(self._worker_count, allowed):
            worker = _Worker()
            worker.thread = threading.Thread(
                target=self._run, args=(worker,), name="statvfs", daemon=True
            )
            self._workers.append(worker)
            worker.thread.start()
            active += 1

    def _run(self, worker: _Worker) -> None:
        while True:
            with self._lock:
                scrape = self._take(worker)
                if scrape is None:
                    return
                request = worker.request
                assert request is not None
                self._pending.add(request.path)

            result = self._call(request)

            with self._lock:
                self._pending.discard(request.path)
                if not scrape.closed and request not in scrape.results:
                    scrape.results[request] = result
                    if len(scrape.results) >= len(scrape.requests):
                        self._progress.notify_all()
                worker.request = None
                if worker.stuck:
                    logger.info(
                        "statvfs on %s returned after timing out",
                        os.fsdecode(request.path),
                    )
                    worker.stuck = False
                    if self._active_count() > self._worker_count:
                        self._workers.remove(worker)
                        return

    def _take(self, worker: _Worker) -> _Scrape | None:
        """Wait for the next request of the current scrape; None means exit."""
        while True:
            if self._closing:
                self._workers.remove(worker)
                return None
            scrape = self._scrape
            if scrape is not None and scrape.next_index < len(scrape.requests):
                worker.request = scrape.requests[scrape.next_index]
                worker.started = time.monotonic()
                scrape.next_index += 1
                return scrape
            self._work_ready.wait()

    def _active_count(self) -> int:
        return sum(1 for worker in self._workers if not worker.stuck)

    def _call(self, request: Request) -> Result:
        try:
            if request.check_directory and not stat.S_ISDIR(
                self._stat(request.path).st_mode
            ):
                return Result(not_directory=True)
            return Result(statvfs=self._statvfs(request.path))
        except OSError as error:
            return Result(error=error.strerror or str(error))
        except ValueError as error:
            # A path with a NUL byte; an exception here would end the worker
            # thread with its request still marked as running.
            return Result(error=str(error))
