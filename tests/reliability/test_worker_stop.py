"""The delivery worker stops even when a wake-up and the stop coincide.

On Python 3.11, ``asyncio.wait_for`` returns the inner result instead of
raising when a cancel arrives just as the inner wait completes. The
worker's loop waits that way, so a message committed during shutdown
swallowed the stop and the loop ran on: SIGTERM left the bridge running,
and the fault matrix hung in about one run of three.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime

import httpx

from bridge.config import Settings
from bridge.metrics import BridgeMetrics
from bridge.outbox import DeliveryWorker
from bridge.store.base import Delivery


class EmptyOutbox:
    """The part of the store the worker's loop reads, with nothing due."""

    def due_deliveries(
        self, now: datetime, limit: int, exclude: Collection[int] = ()
    ) -> list[Delivery]:
        return []


async def start_wake_stop() -> None:
    settings = Settings(delivery_poll_seconds=0.05)
    async with httpx.AsyncClient() as client:
        worker = DeliveryWorker(
            EmptyOutbox(),  # type: ignore[arg-type]
            lambda integration_type: None,
            client,
            settings,
            BridgeMetrics(),
        )
        for _ in range(20):
            worker.start()
            # Let the loop park in its wait for a wake-up or the poll interval.
            await asyncio.sleep(0.01)
            worker.wake()
            await asyncio.wait_for(worker.stop(), timeout=2)
            assert not worker.running


def test_stop_right_after_wake() -> None:
    asyncio.run(start_wake_stop())
