"""The storage interface, so that a server database can replace SQLite later.

Every method that changes state commits before it returns: the HTTP layer
answers Alertmanager 2xx only after such a call came back. Methods are
synchronous and safe to call from several threads; async code calls them
through a thread pool, except the ``*_async`` twins of the writes on the
hot paths (a message, a delivery outcome), which async code awaits
directly. Each twin has the same effect and guarantees as its blocking
method.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bridge.errors import BridgeError
from bridge.integrations import Integration
from bridge.model import Event
from bridge.state import DiskState

# Delivery statuses as stored and shown.
PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"


class StoreError(BridgeError):
    """The store could not read or commit; the caller answers 5xx and retries."""


class IntegrationNotFound(BridgeError, LookupError):
    """No integration has the requested id."""


class IntegrationConflict(BridgeError):
    """The id is already taken, or the integration was declared in the config."""


class DeliverySuperseded(BridgeError):
    """A later event for the same disk already reached the same integration.

    Sending the dead letter now would put an old level after a newer one,
    for example a warning after its all-clear.
    """


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one integration: a row of the outbox.

    ``next_attempt_at`` is when the worker may try again; ``last_error`` is
    the reason of the latest failed attempt, or of the dead letter.
    """

    id: int
    event: Event
    integration_id: str
    integration_type: str
    disk_id: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class OutboxStats:
    """Outbox figures for metrics and readiness."""

    pending: int
    dead: int
    oldest_pending_age_seconds: float


@dataclass(frozen=True)
class Pruned:
    """Rows that one `Store.prune` call deleted, by table."""

    deliveries: int = 0
    events: int = 0

    @property
    def rows(self) -> int:
        return self.deliveries + self.events


@dataclass(frozen=True)
class Transitions:
    """The result of one message: states to save and the events they produced."""

    states: Sequence[DiskState] = ()
    events: Sequence[Event] = ()


# Called inside the store's transaction with the stored states of the
# requested disks (absent ones missing from the mapping).
Decide = Callable[[Mapping[str, DiskState]], Transitions]


@dataclass(frozen=True)
class Committed:
    """The events and delivery count that `Store.apply_transitions` wrote."""

    events: Sequence[Event]
    deliveries: int


class Store(Protocol):
    """Integrations, per-disk state, events and the delivery outbox."""

    # Integrations -------------------------------------------------------

    def list_integrations(self) -> list[Integration]: ...

    def get_integration(self, integration_id: str) -> Integration:
        """Raises: IntegrationNotFound."""
        ...

    def create_integration(self, integration: Integration) -> Integration:
        """Store a new integration and return it with its timestamps.

        Raises: IntegrationConflict when the id is taken.
        """
        ...

    def update_integration(self, integration: Integration) -> Integration:
        """Replace the settings and secrets of an API integration.

        Raises: IntegrationNotFound; IntegrationConflict for a config one.
        """
        ...

    def delete_integration(self, integration_id: str) -> None:
        """Delete an API integration; its pending deliveries become dead letters.

        Raises: IntegrationNotFound; IntegrationConflict for a config one.
        """
        ...

    def sync_config_integrations(self, integrations: Sequence[Integration]) -> None:
        """Make the config-declared integrations exactly ``integrations``.

        Raises: IntegrationConflict when an id is taken by an API integration.
        """
        ...

    # Disk state ---------------------------------------------------------

    def apply_transitions(self, disk_ids: Collection[str], decide: Decide) -> Committed:
        """Run ``decide`` on the stored states and commit its result at once.

        The saved states, the events and one pending delivery per event and
        integration are written in one transaction.
        """
        ...

    async def apply_transitions_async(
        self, disk_ids: Collection[str], decide: Decide
    ) -> Committed:
        """`apply_transitions`, awaited without holding a worker thread."""
        ...

    def get_disk_state(self, disk_id: str) -> DiskState | None: ...

    # Outbox -------------------------------------------------------------

    def due_deliveries(
        self, now: datetime, limit: int, exclude: Collection[int] = ()
    ) -> list[Delivery]:
        """Return pending deliveries due by ``now``, oldest first.

        A delivery is left out while an earlier one for the same integration
        and disk is still pending, so each target sees a disk's events in
        order.
        """
        ...

    def next_attempt_at(self) -> datetime | None:
        """Return the earliest ``next_attempt_at`` of a pending delivery."""
        ...

    def mark_delivered(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        """Finish a delivery; keep ``thread_ref`` for the disk's incident."""
        ...

    def mark_retry(
        self, delivery_id: int, next_attempt_at: datetime, error: str
    ) -> None: ...

    def mark_dead(self, delivery_id: int, now: datetime, reason: str) -> None: ...

    async def mark_delivered_async(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None: ...

    async def mark_retry_async(
        self, delivery_id: int, next_attempt_at: datetime, error: str
    ) -> None: ...

    async def mark_dead_async(
        self, delivery_id: int, now: datetime, reason: str
    ) -> None: ...

    def get_thread_ref(self, integration_id: str, disk_id: str) -> str | None: ...

    def list_deliveries(
        self, status: str | None = None, limit: int = 100
    ) -> list[Delivery]: ...

    def requeue_delivery(self, delivery_id: int, now: datetime) -> Delivery:
        """Make a dead letter pending again, due now.

        Raises: LookupError when no dead delivery has the id;
        DeliverySuperseded when a later delivery for the same integration
        and disk was delivered.
        """
        ...

    def outbox_stats(self, now: datetime) -> OutboxStats: ...

    def prune(self, before: datetime, limit: int) -> Pruned:
        """Delete at most ``limit`` old rows in one transaction.

        Deleted, in this order: dead deliveries created before ``before``,
        delivered ones delivered before it, then events created before it
        that no delivery references. Pending deliveries, disks, threads and
        integrations are never deleted. Fewer than ``limit`` rows deleted
        means that none of these were left at the commit.
        """
        ...

    async def prune_async(self, before: datetime, limit: int) -> Pruned:
        """`prune`, awaited without holding a worker thread."""
        ...

    def check_writable(self) -> None:
        """Commit a small write. Raises: StoreError with the reason."""
        ...

    def close(self) -> None: ...
