"""The one interface every notification target implements.

The delivery worker calls `Target.send` once per attempt and acts on the
outcome: `Delivered` ends the delivery, `Retry` schedules another attempt
(no sooner than ``after`` seconds when the target said so, for example in
``Retry-After``), `Failed` ends it as a dead letter with the reason.
Targets never raise for a remote failure; they classify it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import httpx

from bridge.integrations import Integration
from bridge.model import Event


@dataclass(frozen=True)
class Delivered:
    """The target accepted the event.

    ``thread_ref`` is what a later event of the same incident needs to
    reply in place, such as Slack's message ``ts``; ``None`` when unused.
    """

    thread_ref: str | None = None


@dataclass(frozen=True)
class Retry:
    """A transient failure; ``after`` is the target's requested wait in seconds."""

    reason: str
    after: float | None = None


@dataclass(frozen=True)
class Failed:
    """A final failure: sending the same request again cannot succeed."""

    reason: str


Outcome = Delivered | Retry | Failed


@dataclass(frozen=True)
class SendContext:
    """What a target needs besides the event.

    ``thread_ref`` is the `Delivered.thread_ref` stored for this disk and
    integration by the event that opened the incident, if any.
    """

    integration: Integration
    client: httpx.AsyncClient
    thread_ref: str | None = None


@dataclass(frozen=True)
class Problem:
    """One reason an integration is invalid: the field at fault and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class Target(Protocol):
    """Formats events for one integration type and sends them."""

    type: ClassVar[str]

    async def send(self, event: Event, context: SendContext) -> Outcome:
        """Send one event; classify every remote failure instead of raising."""
        ...

    async def check(self, context: SendContext) -> list[Problem]:
        """Test the live integration; an empty list means it works."""
        ...
