"""Store retention: a background task that deletes old outbox rows.

Every transition writes one event and one delivery per integration, and
nothing else removes them. Once an hour, with the first run a minute after
start, `StorePruner` deletes the deliveries that finished more than
``store_retention_seconds`` ago, then the old events that no delivery
references any more. `Store.prune` defines which rows those are. Pending
deliveries, disk states, threads and integrations are never deleted.

The rows go in batches of `BATCH_ROWS`, each one short transaction through
the store's committer, so Alertmanager messages that arrive meanwhile wait
for one batch at most, never for the whole run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bridge.metrics import BridgeMetrics
from bridge.store.base import Pruned, Store, StoreError

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 3600.0
# Leaves the start to the deliveries that waited while the bridge was down.
FIRST_DELAY_SECONDS = 60.0
BATCH_ROWS = 1000


def _now() -> datetime:
    return datetime.now(UTC)


class StorePruner:
    """Deletes old rows from the store; `start` and `stop` bracket its life.

    Args:
        store: the store to prune.
        metrics: counts deleted rows in ``pruned_rows``.
        retention_seconds: age after which finished rows go; 0 keeps every row
            and `start` then starts nothing.
        interval_seconds: time between two runs, and before a retry after a
            `StoreError`.
        first_delay_seconds: time from `start` to the first run.
        batch_rows: rows deleted in one transaction at most.
        clock: the current time, for the cutoff of each run.
    """

    def __init__(
        self,
        store: Store,
        metrics: BridgeMetrics,
        retention_seconds: float,
        interval_seconds: float = INTERVAL_SECONDS,
        first_delay_seconds: float = FIRST_DELAY_SECONDS,
        batch_rows: int = BATCH_ROWS,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._retention = retention_seconds
        self._interval = interval_seconds
        self._first_delay = first_delay_seconds
        self._batch_rows = batch_rows
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self._retention:
            logger.info("store pruning disabled retention_seconds=0")
            return
        self._task = asyncio.create_task(self._run(), name="store-pruner")
        self._task.add_done_callback(self._log_failure)
        logger.info(
            "store pruner started retention_seconds=%g interval_seconds=%g",
            self._retention,
            self._interval,
        )

    async def stop(self) -> None:
        """Cancel the task. A batch that the committer has started still commits."""
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        logger.info("store pruner stopped")

    @staticmethod
    def _log_failure(task: asyncio.Task[None]) -> None:
        # Only a StoreError is retried. Anything else is a bug that ends the
        # task, and stop() would otherwise collect it without a word.
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "store pruner failed, pruning stops until a restart error=%r",
                repr(task.exception()),
            )

    async def prune(self, now: datetime) -> Pruned:
        """Delete the rows older than ``now`` minus the retention, in batches.

        Each batch is counted in the metric as soon as it is committed, so
        the counter stays right when a later batch raises `StoreError`.
        Returns the total of the run; with a retention of 0 it deletes
        nothing.
        """
        if not self._retention:
            return Pruned()
        before = now - timedelta(seconds=self._retention)
        started = time.monotonic()
        deliveries = events = batches = 0
        while True:
            batch = await self._store.prune_async(before, self._batch_rows)
            batches += 1
            deliveries += batch.deliveries
            events += batch.events
            self._metrics.pruned_rows.labels("deliveries").inc(batch.deliveries)
            self._metrics.pruned_rows.labels("events").inc(batch.events)
            if batch.rows < self._batch_rows:
                break

        if deliveries or events:
            logger.info(
                "store pruned deliveries=%d events=%d before=%s batches=%d "
                "duration_seconds=%.3f",
                deliveries,
                events,
                before.isoformat(),
                batches,
                time.monotonic() - started,
            )
        return Pruned(deliveries=deliveries, events=events)

    async def _run(self) -> None:
        await asyncio.sleep(self._first_delay)
        while True:
            try:
                await self.prune(self._clock())
            except StoreError as exc:
                logger.warning(
                    "store prune failed retry_in_seconds=%g error=%r",
                    self._interval,
                    str(exc),
                )
            await asyncio.sleep(self._interval)
