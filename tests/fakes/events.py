"""Events, integrations and a client runner shared by tests of the targets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from bridge.http import outbound_client
from bridge.integrations import PAGERDUTY, SLACK, WEBHOOK, Integration
from bridge.model import DiskKey, Event, EventType, Level, Thresholds
from bridge.targets.base import SendContext

T = TypeVar("T")

DISK_LABELS = {
    "project": "shop",
    "environment": "main",
    "service": "db",
    "mountpoint": "/var/lib/mysql",
    "instance": "db-0.shop.internal:9100",
}
STARTS_AT = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)
ENDS_AT = datetime(2026, 12, 4, 11, 30, 0, tzinfo=UTC)
LEVELS = {
    EventType.WARNING: (Level.OK, Level.WARNING),
    EventType.CRITICAL: (Level.WARNING, Level.CRITICAL),
    EventType.DEESCALATION: (Level.CRITICAL, Level.WARNING),
    EventType.ALL_CLEAR: (Level.WARNING, Level.OK),
}
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


def make_event(
    event_type: EventType = EventType.WARNING,
    labels: dict[str, str] | None = None,
    **fields: Any,
) -> Event:
    """Build an event of ``event_type`` for the standard test disk."""
    previous, level = LEVELS[event_type]
    defaults: dict[str, Any] = {
        "id": f"evt-{event_type.value}-1",
        "type": event_type,
        "disk": DiskKey.from_alert_labels(
            labels if labels is not None else DISK_LABELS
        ),
        "level": level,
        "previous_level": previous,
        "occurred_at": STARTS_AT,
        "free_percent": None if level is Level.OK else "14.52",
        "thresholds": Thresholds(),
        "starts_at": STARTS_AT,
        "ends_at": ENDS_AT if level is Level.OK else None,
        "summary": "Disk /var/lib/mysql of db is filling up",
        "runbook_url": "https://runbooks.example.com/low-disk",
        "generator_url": "https://prometheus.example.com/graph?g0.expr=x&g0.tab=1",
        "external_url": "https://alertmanager.example.com",
    }
    return Event(**{**defaults, **fields})


def run(make: Callable[[httpx.AsyncClient], Awaitable[T]], timeout: float = 5.0) -> T:
    """Run ``make(client)`` with a fresh bridge client in a new event loop."""

    async def main() -> T:
        async with outbound_client(timeout) as client:
            return await make(client)

    return asyncio.run(main())


def context(
    integration: Integration, client: httpx.AsyncClient, thread_ref: str | None = None
) -> SendContext:
    return SendContext(integration=integration, client=client, thread_ref=thread_ref)


def slack_integration(token: str, channel: str = "#alerts") -> Integration:
    return Integration(
        id="slack-1",
        type=SLACK,
        settings={"channel": channel},
        secrets={"token": token},
    )


def pagerduty_integration(routing_key: str = ROUTING_KEY) -> Integration:
    return Integration(id="pd-1", type=PAGERDUTY, secrets={"routing_key": routing_key})


def webhook_integration(url: str, shared_key: str | None = None) -> Integration:
    secrets = {"shared_key": shared_key} if shared_key else {}
    return Integration(
        id="hook-1", type=WEBHOOK, settings={"url": url}, secrets=secrets
    )
