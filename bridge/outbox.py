"""The delivery worker: sends the outbox's pending deliveries to their targets.

The worker is one asyncio task. It picks due deliveries from the store and
sends each through the `Target` of its integration type, with at most one
attempt in flight per integration and disk. The store hands out a delivery
only after every earlier delivery for the same integration and disk has
left the pending state, so an all-clear never overtakes the warning it
clears. Limits on attempts in flight, in total and per integration, keep a
target that is down from being flooded. An attempt is in flight while its
request is; its slot frees before the outcome is committed, so the next
attempt's request does not wait for that fsync. The delivery itself stays
held back until the outcome is stored, and attempts awaiting that commit
are limited too, so a stalled store stops new sends.

Outcomes:

- `Delivered`: done; a returned ``thread_ref`` is kept for the disk's
  incident until its all-clear is delivered.
- `Retry` (and a timeout): tried again after an exponential backoff with
  jitter, and no sooner than the target's ``after`` (``Retry-After``).
  Once the delivery is older than ``delivery_max_age_seconds`` it becomes a
  dead letter with the last reason.
- `Failed`: a dead letter with the reason.

A pending delivery survives a crash in the store, so after a restart the
worker resumes it; the receiver may then see an event twice, always with the
same event id. When the store cannot record an outcome (disk full, I/O
error), the delivery stays pending, and the worker holds it back in memory
with the same backoff, so that a broken store does not resend it in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from starlette.concurrency import run_in_threadpool

from bridge.config import Settings
from bridge.integrations import Integration
from bridge.metrics import BridgeMetrics
from bridge.store.base import Delivery, IntegrationNotFound, Store, StoreError
from bridge.targets.base import Delivered, Failed, Outcome, Retry, SendContext, Target

logger = logging.getLogger(__name__)

# Due rows that one pick reads at most while looking past the backlog of
# integrations at their limit of attempts in flight.
MAX_DUE_SCAN = 4096

# Attempts between their pick and their stored outcome, in multiples of
# delivery_max_in_flight: those in flight plus as many awaiting a commit.
UNRECORDED_FACTOR = 2

# Returns the target for an integration type, or None when none exists.
TargetLookup = Callable[[str], Target | None]

# A delivery's integration (None once deleted) and the disk's thread
# reference, read when the delivery is picked.
_Context = tuple[Integration | None, str | None]


def backoff_seconds(
    attempts: int, base: float, maximum: float, rng: random.Random
) -> float:
    """Return the wait before the next attempt after ``attempts`` failures.

    Exponential, capped at ``maximum``, with "equal jitter": a random value
    between half the step and the full step, so that deliveries that failed
    together do not retry together.
    """
    step = min(maximum, base * 2 ** max(0, attempts - 1))
    return rng.uniform(step / 2, step)


class DeliveryWorker:
    """Sends pending deliveries; `start` and `stop` bracket its life."""

    def __init__(
        self,
        store: Store,
        lookup: TargetLookup,
        client: httpx.AsyncClient,
        settings: Settings,
        metrics: BridgeMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._lookup = lookup
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 -- jitter, not a secret
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Every delivery between its pick and its stored outcome.
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        # Of those, the ones whose request is in flight, per integration.
        self._sending: set[int] = set()
        self._per_integration: Counter[str] = Counter()
        # Delivery id -> (monotonic time it may start again, store failures).
        self._held: dict[int, tuple[float, int]] = {}
        self.last_error: str | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def in_flight(self) -> int:
        """Attempts whose request is in flight."""
        return len(self._sending)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="delivery-worker")
        self._metrics.worker_up.set(1)
        logger.info("delivery worker started")

    async def stop(self) -> None:
        """Cancel the loop and attempts in flight; pending ones stay in the store."""
        # Python 3.11's asyncio.wait_for can swallow a cancel that arrives
        # as its inner wait completes, so the loop also checks this flag.
        self._stopping = True
        self._wake.set()
        tasks = [*self._in_flight.values()]
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._metrics.worker_up.set(0)
        logger.info(
            "delivery worker stopped pending_attempts_cancelled=%d", len(tasks) - 1
        )

    def wake(self) -> None:
        """Look for due deliveries now, such as after a commit of new events."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self._start_due()
                self.last_error = None
            except StoreError as exc:
                self.last_error = str(exc)
                logger.error(
                    "delivery worker cannot read the outbox error=%r", str(exc)
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), timeout=self._settings.delivery_poll_seconds
                )

    def _room(self) -> int:
        """Return how many attempts may start now.

        Attempts whose outcome is not stored yet are capped too, at
        `UNRECORDED_FACTOR` times the limit in flight. Without that cap, a
        store whose commits stall would let the worker send every disk's
        next delivery, each to be sent again after a restart.
        """
        limit = self._settings.delivery_max_in_flight
        return min(
            limit - len(self._sending),
            UNRECORDED_FACTOR * limit - len(self._in_flight),
        )

    async def _start_due(self) -> None:
        room = self._room()
        if room <= 0 or self._stopping:
            return
        clock = time.monotonic()
        held_ids = [key for key, (until, _) in self._held.items() if until > clock]
        startable = await run_in_threadpool(
            self._read_due,
            room,
            [*self._in_flight, *held_ids],
            dict(self._per_integration),
        )
        per_integration_limit = self._settings.delivery_max_in_flight_per_integration
        for delivery, context in startable:
            if self._stopping:
                break
            if self._room() <= 0:
                break
            if self._per_integration[delivery.integration_id] >= per_integration_limit:
                continue
            self._launch(delivery, context)

    def _read_due(
        self, room: int, exclude: list[int], in_flight: Counter[str]
    ) -> list[tuple[Delivery, _Context]]:
        """Return the deliveries to start now, each with what its send needs.

        One thread hop for the due query and the reads of each delivery's
        integration and thread reference: every hop waits for the GIL, which
        the event loop holds most of the time under load.
        """
        integrations: dict[str, Integration | None] = {}
        startable = []
        for delivery in self._due_within_limits(room, exclude, in_flight):
            if delivery.integration_id not in integrations:
                try:
                    integrations[delivery.integration_id] = self._store.get_integration(
                        delivery.integration_id
                    )
                except IntegrationNotFound:
                    integrations[delivery.integration_id] = None
            integration = integrations[delivery.integration_id]
            thread_ref = None
            if integration is not None:
                thread_ref = self._store.get_thread_ref(
                    delivery.integration_id, delivery.disk_id
                )
            startable.append((delivery, (integration, thread_ref)))
        return startable

    def _due_within_limits(
        self, room: int, exclude: list[int], in_flight: Counter[str]
    ) -> list[Delivery]:
        """Return up to ``room`` due deliveries whose integration has a free slot.

        The store returns due deliveries oldest first, so a backlog of an
        integration at its limit, such as one whose receiver hangs, can fill
        a whole page. The next, larger page skips the rows already seen, so
        that another integration's deliveries behind that backlog still go.
        """
        limit = self._settings.delivery_max_in_flight_per_integration
        now = datetime.now(UTC)
        seen = list(exclude)
        counts = Counter(in_flight)
        chosen: list[Delivery] = []
        page = room * 4
        scanned = 0
        # NOTE: past MAX_DUE_SCAN rows of saturated integrations in one pass,
        # the deliveries behind them wait until those integrations free a
        # slot or their rows fall behind by backoff.
        while len(chosen) < room and scanned < MAX_DUE_SCAN:
            due = self._store.due_deliveries(now, page, seen)
            for delivery in due:
                seen.append(delivery.id)
                if len(chosen) < room and counts[delivery.integration_id] < limit:
                    counts[delivery.integration_id] += 1
                    chosen.append(delivery)
            scanned += len(due)
            if len(due) < page or len(chosen) >= room:
                break
            if not self._has_free_integration(counts, limit):
                # Every integration is at its limit, as in a storm to one
                # receiver: reading further pages would find nothing to start.
                break
            page *= 2
        return chosen

    def _has_free_integration(self, counts: Counter[str], limit: int) -> bool:
        """Tell whether some integration has fewer than ``limit`` attempts."""
        return any(
            counts[integration.id] < limit
            for integration in self._store.list_integrations()
        )

    def _launch(self, delivery: Delivery, context: _Context) -> None:
        self._per_integration[delivery.integration_id] += 1
        self._sending.add(delivery.id)
        task = asyncio.create_task(self._attempt(delivery, context))
        self._in_flight[delivery.id] = task

        def finished(_: asyncio.Task[None]) -> None:
            self._release(delivery)
            self._in_flight.pop(delivery.id, None)
            # The store now offers the disk's next delivery, if any.
            self._wake.set()

        task.add_done_callback(finished)

    def _release(self, delivery: Delivery) -> None:
        """Free the attempt's slot once its request is over, at most once."""
        if delivery.id in self._sending:
            self._sending.discard(delivery.id)
            self._per_integration[delivery.integration_id] -= 1
            self._wake.set()

    async def _attempt(self, delivery: Delivery, context: _Context) -> None:
        try:
            outcome = await self._send(delivery, context)
            self._release(delivery)
            await self._record(delivery, outcome)
        except StoreError as exc:
            # The delivery stays pending and is retried, which can repeat the
            # send; receivers deduplicate by event id.
            delay = self._hold(delivery)
            logger.error(
                "delivery outcome not stored delivery_id=%d event_id=%s "
                "hold_seconds=%.3f error=%r",
                delivery.id,
                delivery.event.id,
                delay,
                str(exc),
            )
        except Exception as exc:
            # A bug while recording the outcome. Held back like a store
            # failure, so that the pending delivery is not sent again at once
            # in a loop. Only the type is logged, as in `_send`.
            delay = self._hold(delivery)
            logger.error(
                "delivery outcome not recorded delivery_id=%d event_id=%s "
                "hold_seconds=%.3f exception=%s",
                delivery.id,
                delivery.event.id,
                delay,
                type(exc).__name__,
            )
        else:
            self._held.pop(delivery.id, None)

    def _hold(self, delivery: Delivery) -> float:
        """Hold a delivery back from new picks; return the backoff in seconds."""
        failures = self._held.get(delivery.id, (0.0, 0))[1] + 1
        delay = backoff_seconds(
            failures,
            self._settings.delivery_backoff_base_seconds,
            self._settings.delivery_backoff_max_seconds,
            self._rng,
        )
        self._held[delivery.id] = (time.monotonic() + delay, failures)
        return delay

    async def _send(self, delivery: Delivery, context: _Context) -> Outcome:
        integration, thread_ref = context
        if integration is None:
            return Failed(f"integration {delivery.integration_id!r} no longer exists")
        target = self._lookup(integration.type)
        if target is None:
            return Retry(f"no target is available for type {integration.type!r}")

        logger.info(
            "delivery attempt delivery_id=%d event_id=%s integration=%s type=%s "
            "disk=%s attempt=%d",
            delivery.id,
            delivery.event.id,
            delivery.integration_id,
            integration.type,
            delivery.disk_id,
            delivery.attempts + 1,
        )
        timeout = self._settings.delivery_timeout_seconds
        context = SendContext(
            integration=integration, client=self._client, thread_ref=thread_ref
        )
        started = time.monotonic()
        try:
            return await asyncio.wait_for(target.send(delivery.event, context), timeout)
        except TimeoutError:
            return Retry(f"timed out after {timeout:g} s")
        except Exception as exc:
            # Targets classify remote failures instead of raising, so this is a
            # bug in a target. Only the type is logged: exception texts from
            # HTTP libraries can quote URLs that hold secrets.
            logger.error(
                "target raised delivery_id=%d type=%s exception=%s",
                delivery.id,
                integration.type,
                type(exc).__name__,
            )
            return Retry(f"target raised {type(exc).__name__}")
        finally:
            self._metrics.latency.labels(integration.type).observe(
                time.monotonic() - started
            )

    async def _record(self, delivery: Delivery, outcome: Outcome) -> None:
        now = datetime.now(UTC)
        kind = delivery.integration_type
        fields = (delivery.id, delivery.event.id, delivery.integration_id)
        if isinstance(outcome, Delivered):
            await self._store.mark_delivered_async(delivery.id, now, outcome.thread_ref)
            self._metrics.deliveries.labels(kind, "delivered").inc()
            logger.info(
                "delivery delivered delivery_id=%d event_id=%s integration=%s", *fields
            )
            return

        if isinstance(outcome, Failed):
            await self._dead(delivery, now, outcome.reason, "failed")
            return

        deadline = delivery.created_at + timedelta(
            seconds=self._settings.delivery_max_age_seconds
        )
        if now >= deadline:
            reason = (
                f"gave up after {self._settings.delivery_max_age_seconds:g} s: "
                f"{outcome.reason}"
            )
            await self._dead(delivery, now, reason, "expired")
            return

        delay = backoff_seconds(
            delivery.attempts + 1,
            self._settings.delivery_backoff_base_seconds,
            self._settings.delivery_backoff_max_seconds,
            self._rng,
        )
        if outcome.after is not None:
            delay = max(delay, outcome.after)
        # The last attempt happens at the deadline rather than never. Capping
        # the delay first also keeps a Retry-After of centuries from
        # overflowing the datetime.
        delay = min(delay, (deadline - now).total_seconds())
        next_attempt = now + timedelta(seconds=delay)
        await self._store.mark_retry_async(delivery.id, next_attempt, outcome.reason)
        self._metrics.deliveries.labels(kind, "retry").inc()
        self._metrics.retries.labels(kind).inc()
        logger.warning(
            "delivery retry delivery_id=%d event_id=%s integration=%s "
            "delay_seconds=%.3f reason=%r",
            *fields,
            (next_attempt - now).total_seconds(),
            outcome.reason,
        )

    async def _dead(
        self, delivery: Delivery, now: datetime, reason: str, outcome: str
    ) -> None:
        await self._store.mark_dead_async(delivery.id, now, reason)
        self._metrics.deliveries.labels(delivery.integration_type, outcome).inc()
        self._metrics.dead_letters.labels(delivery.integration_type).inc()
        logger.error(
            "delivery dead letter delivery_id=%d event_id=%s integration=%s reason=%r",
            delivery.id,
            delivery.event.id,
            delivery.integration_id,
            reason,
        )
