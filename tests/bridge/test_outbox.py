"""Tests of the delivery worker with fake targets and a real SQLite store."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from bridge.config import Settings
from bridge.integrations import Integration
from bridge.metrics import BridgeMetrics
from bridge.model import DiskKey, Event, EventType, Level
from bridge.outbox import DeliveryWorker, backoff_seconds
from bridge.state import DiskState
from bridge.store.base import (
    DEAD,
    DELIVERED,
    Delivery,
    IntegrationNotFound,
    StoreError,
    Transitions,
)
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import (
    Delivered,
    Failed,
    Outcome,
    Problem,
    Retry,
    SendContext,
    Target,
)

DISK = DiskKey.from_alert_labels({"project": "p", "mountpoint": "/data"})
FAST = Settings(
    delivery_backoff_base_seconds=0.05,
    delivery_backoff_max_seconds=0.2,
    delivery_poll_seconds=0.02,
    delivery_timeout_seconds=0.5,
)


@dataclass
class Sent:
    event_id: str
    thread_ref: str | None
    at: float


@dataclass
class FakeTarget:
    """Answers each send with the next scripted outcome, then `Delivered`."""

    type: ClassVar[str] = "health.webhook"
    script: list[Outcome | BaseException | float] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def send(self, event: Event, context: SendContext) -> Outcome:
        self.sent.append(Sent(event.id, context.thread_ref, time.monotonic()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            step = self.script.pop(0) if self.script else Delivered(f"ts-{event.id}")
            if isinstance(step, float):
                await asyncio.sleep(step)
                return Delivered()
            if isinstance(step, BaseException):
                raise step
            await asyncio.sleep(0.01)
            return step
        finally:
            self.in_flight -= 1

    async def check(self, context: SendContext) -> list[Problem]:
        return []


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "bridge.db")
    opened.create_integration(Integration(id="hook", type="health.webhook"))
    yield opened
    opened.close()


def add_event(
    store: SQLiteStore,
    event_id: str,
    level: Level = Level.WARNING,
    disk: DiskKey = DISK,
) -> None:
    previous = Level.WARNING if level is Level.OK else Level.OK
    event = Event(
        id=event_id,
        type=EventType.for_transition(previous, level),
        disk=disk,
        level=level,
        previous_level=previous,
        occurred_at=datetime.now(UTC),
    )

    def decide(current: Mapping[str, DiskState]) -> Transitions:
        return Transitions(states=[DiskState(disk=disk, level=level)], events=[event])

    store.apply_transitions([disk.id], decide)


def run_worker(
    store: SQLiteStore,
    target: Target,
    until: Callable[[], bool],
    settings: Settings = FAST,
    limit: float = 5.0,
) -> None:
    """Run a worker until ``until()`` holds, failing after ``limit`` seconds."""

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            worker = DeliveryWorker(
                store,
                {"health.webhook": target}.get,
                client,
                settings,
                BridgeMetrics(),
                rng=random.Random(7),  # noqa: S311 -- seeded jitter, repeatable
            )
            worker.start()
            deadline = time.monotonic() + limit
            try:
                while not until():
                    assert time.monotonic() < deadline, "worker did not finish in time"
                    await asyncio.sleep(0.01)
            finally:
                await worker.stop()

    asyncio.run(main())


def statuses(store: SQLiteStore) -> list[str]:
    return [item.status for item in reversed(store.list_deliveries())]


def test_delivered_stores_thread_ref(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget()

    run_worker(store, target, lambda: statuses(store) == [DELIVERED])

    assert store.get_thread_ref("hook", DISK.id) == "ts-warn"


def test_all_clear_uses_and_clears_thread(store: SQLiteStore) -> None:
    add_event(store, "warn")
    add_event(store, "clear", Level.OK)
    target = FakeTarget()

    run_worker(store, target, lambda: statuses(store) == [DELIVERED, DELIVERED])

    assert [(item.event_id, item.thread_ref) for item in target.sent] == [
        ("warn", None),
        ("clear", "ts-warn"),
    ]
    assert store.get_thread_ref("hook", DISK.id) is None


def test_retry_then_delivered(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget(script=[Retry("HTTP 503"), Retry("HTTP 503")])

    run_worker(store, target, lambda: statuses(store) == [DELIVERED])

    (delivery,) = store.list_deliveries()
    assert delivery.attempts == 3
    gaps = [b.at - a.at for a, b in zip(target.sent, target.sent[1:], strict=False)]
    # Backoff after failure n waits between half and all of base * 2**(n-1).
    assert gaps[0] >= 0.025
    assert gaps[1] >= 0.05


def test_retry_after_is_honoured(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget(script=[Retry("HTTP 429", after=0.4)])

    run_worker(store, target, lambda: statuses(store) == [DELIVERED])

    assert len(target.sent) == 2
    assert target.sent[1].at - target.sent[0].at >= 0.4


def test_failed_becomes_dead_letter(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget(script=[Failed("HTTP 400: invalid routing key")])

    run_worker(store, target, lambda: statuses(store) == [DEAD])

    (delivery,) = store.list_deliveries()
    assert delivery.last_error == "HTTP 400: invalid routing key"
    assert len(target.sent) == 1


def test_gives_up_after_max_age(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget(script=[Retry("HTTP 503")] * 100)
    settings = Settings(
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.1,
        delivery_poll_seconds=0.02,
        delivery_max_age_seconds=1,
    )

    run_worker(store, target, lambda: statuses(store) == [DEAD], settings=settings)

    (delivery,) = store.list_deliveries()
    assert delivery.last_error == "gave up after 1 s: HTTP 503"


def test_timeout_is_retried(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget(script=[5.0])
    settings = Settings(
        delivery_timeout_seconds=0.1,
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.1,
        delivery_poll_seconds=0.02,
    )

    run_worker(store, target, lambda: statuses(store) == [DELIVERED], settings=settings)

    assert len(target.sent) == 2


def test_target_exception_is_retried(store: SQLiteStore) -> None:
    add_event(store, "warn")
    target = FakeTarget(script=[RuntimeError("bug with https://secret@host/")])

    run_worker(store, target, lambda: statuses(store) == [DELIVERED])

    assert len(target.sent) == 2


class UnrecordableStore(SQLiteStore):
    """Fails to record the first ``failures`` deliveries, like a full disk."""

    failures = 3

    def mark_delivered(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("SQLite mark_delivered failed: database or disk is full")
        super().mark_delivered(delivery_id, now, thread_ref)


def test_unrecorded_outcome_backs_off(tmp_path: Path) -> None:
    store = UnrecordableStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    add_event(store, "warn")
    target = FakeTarget()

    run_worker(store, target, lambda: statuses(store) == [DELIVERED])
    store.close()

    assert len(target.sent) == 4
    gaps = [b.at - a.at for a, b in zip(target.sent, target.sent[1:], strict=False)]
    # Without a hold the worker would resend at once, about every 10 ms.
    assert gaps[0] >= 0.025
    assert gaps[1] >= 0.05
    assert gaps[2] >= 0.1


def test_disk_order_kept_while_retrying(store: SQLiteStore) -> None:
    add_event(store, "warn")
    add_event(store, "clear", Level.OK)
    target = FakeTarget(script=[Retry("HTTP 503"), Retry("HTTP 503")])

    run_worker(store, target, lambda: statuses(store) == [DELIVERED, DELIVERED])

    assert [item.event_id for item in target.sent] == ["warn", "warn", "warn", "clear"]


def test_unknown_type_waits_and_dead_after_age(store: SQLiteStore) -> None:
    store.create_integration(Integration(id="other", type="health.slack"))
    add_event(store, "warn")
    target = FakeTarget()
    settings = Settings(
        delivery_backoff_base_seconds=0.05,
        delivery_backoff_max_seconds=0.1,
        delivery_poll_seconds=0.02,
        delivery_max_age_seconds=1,
    )

    run_worker(store, target, lambda: DEAD in statuses(store), settings=settings)

    dead = store.list_deliveries(DEAD)
    assert [item.integration_id for item in dead] == ["other"]
    assert dead[0].last_error == (
        "gave up after 1 s: no target is available for type 'health.slack'"
    )


def test_concurrency_capped_per_integration(store: SQLiteStore) -> None:
    for index in range(12):
        disk = DiskKey.from_alert_labels({"mountpoint": f"/m{index}"})
        add_event(store, f"e{index}", disk=disk)
    target = FakeTarget(script=[0.05] * 12)
    settings = Settings(
        delivery_max_in_flight_per_integration=3, delivery_poll_seconds=0.02
    )

    run_worker(
        store, target, lambda: statuses(store) == [DELIVERED] * 12, settings=settings
    )

    assert target.max_in_flight == 3


def test_restart_resumes_pending(tmp_path: Path) -> None:
    path = tmp_path / "bridge.db"
    first = SQLiteStore(path)
    first.create_integration(Integration(id="hook", type="health.webhook"))
    add_event(first, "warn")
    first.close()

    second = SQLiteStore(path)
    target = FakeTarget()
    run_worker(second, target, lambda: statuses(second) == [DELIVERED])
    second.close()

    assert [item.event_id for item in target.sent] == ["warn"]


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [
        (1, 1.0, 2.0),
        (2, 2.0, 4.0),
        (3, 4.0, 8.0),
        # Capped at the maximum of 30 s.
        (10, 15.0, 30.0),
    ],
)
def test_backoff_bounds(attempts: int, low: float, high: float) -> None:
    rng = random.Random(1)  # noqa: S311 -- seeded jitter, repeatable

    values = [backoff_seconds(attempts, 2.0, 30.0, rng) for _ in range(200)]

    assert min(values) >= low
    assert max(values) <= high


class VanishingIntegrationStore(SQLiteStore):
    """Loses the integration between the due query and its read."""

    def get_integration(self, integration_id: str) -> Integration:
        raise IntegrationNotFound(f"no integration has the id {integration_id!r}")


def test_integration_gone_before_send(tmp_path: Path) -> None:
    store = VanishingIntegrationStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    add_event(store, "warn")
    target = FakeTarget()

    run_worker(store, target, lambda: statuses(store) == [DEAD])
    (delivery,) = store.list_deliveries()
    store.close()

    assert delivery.last_error == "integration 'hook' no longer exists"
    assert target.sent == []


def test_one_read_per_integration_per_batch(store: SQLiteStore) -> None:
    store.create_integration(Integration(id="other", type="health.webhook"))
    disks = [
        DiskKey.from_alert_labels({"project": "p", "mountpoint": f"/d{index}"})
        for index in range(6)
    ]
    for index, disk in enumerate(disks):
        add_event(store, f"warn-{index}", disk=disk)
    reads: list[str] = []
    original = store.get_integration

    def counting(integration_id: str) -> Integration:
        reads.append(integration_id)
        return original(integration_id)

    store.get_integration = counting  # type: ignore[method-assign]
    target = FakeTarget()
    settings = dataclasses.replace(FAST, delivery_max_in_flight_per_integration=3)

    run_worker(store, target, lambda: statuses(store) == [DELIVERED] * 12, settings)

    assert len(target.sent) == 12
    # At most one read of each integration per due query, not one per send.
    assert len(reads) < len(target.sent)


class GatedOutcomeStore(SQLiteStore):
    """Holds the first ``mark_delivered_async`` until ``gate`` is set.

    It replaces the async method itself, so the blocking twin and the
    committer stay as they are.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = asyncio.Event()
        self.held_delivery_id: int | None = None
        self.opened_at: float | None = None
        self.stored_at: dict[int, float] = {}

    async def mark_delivered_async(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        if self.held_delivery_id is None:
            self.held_delivery_id = delivery_id
            await self.gate.wait()
            self.opened_at = time.monotonic()
        await super().mark_delivered_async(delivery_id, now, thread_ref)
        self.stored_at[delivery_id] = time.monotonic()


def gated_store(tmp_path: Path) -> GatedOutcomeStore:
    store = GatedOutcomeStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type="health.webhook"))
    return store


def open_gate_after(
    store: GatedOutcomeStore, ready: Callable[[], bool], hold: float
) -> Callable[[], bool]:
    """Return a ``run_worker`` condition that opens the gate, then waits for both.

    The gate opens once ``ready()`` is true and the outcome was held for
    ``hold`` seconds, or after 2 s at the latest, so a worker that never
    gets ready still finishes and the test fails on its assertions.
    """
    first_seen: list[float] = []

    def until() -> bool:
        if store.held_delivery_id is not None and not store.gate.is_set():
            if not first_seen:
                first_seen.append(time.monotonic())
            waited = time.monotonic() - first_seen[0]
            if (ready() and waited >= hold) or waited >= 2.0:
                store.gate.set()
        return statuses(store) == [DELIVERED, DELIVERED]

    return until


def test_slot_frees_before_outcome_stored(tmp_path: Path) -> None:
    store = gated_store(tmp_path)
    other_disk = DiskKey.from_alert_labels({"project": "p", "mountpoint": "/logs"})
    add_event(store, "first")
    add_event(store, "second", disk=other_disk)
    target = FakeTarget()
    settings = dataclasses.replace(FAST, delivery_max_in_flight_per_integration=1)

    # Held for a few poll intervals after the second send, so that a resend
    # of the held delivery would show.
    until = open_gate_after(store, lambda: len(target.sent) >= 2, hold=0.2)
    run_worker(store, target, until, settings=settings)
    store.close()

    assert [item.event_id for item in target.sent] == ["first", "second"]
    assert store.opened_at is not None
    # The second request started while the first outcome was still held.
    assert target.sent[1].at < store.opened_at
    # Slots still cap the requests in flight.
    assert target.max_in_flight == 1


def test_same_disk_waits_for_stored_outcome(tmp_path: Path) -> None:
    store = gated_store(tmp_path)
    add_event(store, "warn")
    add_event(store, "clear", Level.OK)
    target = FakeTarget()
    settings = dataclasses.replace(FAST, delivery_max_in_flight_per_integration=1)

    until = open_gate_after(store, lambda: True, hold=0.2)
    run_worker(store, target, until, settings=settings)
    store.close()

    assert [item.event_id for item in target.sent] == ["warn", "clear"]
    assert store.held_delivery_id is not None
    # The all-clear left only after the warning's outcome was committed.
    assert target.sent[1].at > store.stored_at[store.held_delivery_id]


class PagingOutbox:
    """A store part that always has a full page of due rows for one integration."""

    def __init__(self, integration: Integration, delivery: Delivery) -> None:
        self.integration = integration
        self.delivery = delivery
        self.pages: list[int] = []

    def due_deliveries(
        self, now: datetime, limit: int, exclude: object = ()
    ) -> list[Delivery]:
        self.pages.append(limit)
        return [
            dataclasses.replace(self.delivery, id=len(self.pages) * 100_000 + index)
            for index in range(limit)
        ]

    def list_integrations(self) -> list[Integration]:
        return [self.integration]


def test_saturated_integration_reads_one_page(store: SQLiteStore) -> None:
    """With the only integration at its limit, a pick reads no further page."""
    add_event(store, "e1")
    (delivery,) = store.due_deliveries(datetime.now(UTC), 10)
    (integration,) = store.list_integrations()
    outbox = PagingOutbox(integration, delivery)
    settings = dataclasses.replace(FAST, delivery_max_in_flight_per_integration=2)
    worker = DeliveryWorker(
        outbox,  # type: ignore[arg-type]
        lambda integration_type: None,
        httpx.AsyncClient(),
        settings,
        BridgeMetrics(),
    )

    chosen = worker._due_within_limits(4, [], Counter({integration.id: 2}))

    assert chosen == []
    assert outbox.pages == [16]
