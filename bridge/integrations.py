"""Integrations: where notifications go, and which of their fields are secret.

An integration has a type (``health.slack``, ``health.pagerduty``,
``health.webhook``), plain settings (channel, URL) and secrets (token,
routing key, shared key). Secrets are write-only: nothing that leaves the
bridge, a ``repr`` included, shows more than whether one is set and its
last four characters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SLACK = "health.slack"
PAGERDUTY = "health.pagerduty"
WEBHOOK = "health.webhook"
TYPES = (SLACK, PAGERDUTY, WEBHOOK)

# Field names as the CLI and the admin API spell them (with "_" for "-").
SETTING_FIELDS = {SLACK: ("channel",), PAGERDUTY: (), WEBHOOK: ("url",)}
SECRET_FIELDS = {
    SLACK: ("token",),
    PAGERDUTY: ("routing_key",),
    WEBHOOK: ("shared_key",),
}
REQUIRED_FIELDS = {
    SLACK: ("token", "channel"),
    PAGERDUTY: ("routing_key",),
    WEBHOOK: ("url",),
}

# Secrets shorter than this show no characters at all.
_MIN_SECRET_FOR_HINT = 12


class Source(enum.StrEnum):
    """Where an integration was declared; config ones are read-only at run time."""

    CONFIG = "config"
    API = "api"


def secret_hint(secret: str) -> dict[str, Any]:
    """Describe a secret without revealing it: set, and at most its last 4."""
    if len(secret) < _MIN_SECRET_FOR_HINT:
        return {"set": True}
    return {"set": True, "last4": secret[-4:]}


@dataclass
class Integration:
    """A configured notification destination."""

    id: str
    type: str
    settings: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    source: Source = Source.API
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def __repr__(self) -> str:
        masked = {name: "***" for name in self.secrets}
        return (
            f"Integration(id={self.id!r}, type={self.type!r}, "
            f"settings={self.settings!r}, secrets={masked!r}, "
            f"source={self.source.value!r})"
        )

    def public_view(self) -> dict[str, Any]:
        """Return the integration as the admin API and the CLI show it."""
        view: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "source": self.source.value,
            "read_only": self.source is Source.CONFIG,
            **self.settings,
        }
        for name in SECRET_FIELDS.get(self.type, ()):
            secret = self.secrets.get(name)
            view[name] = secret_hint(secret) if secret else {"set": False}
        for name in ("created_at", "updated_at"):
            value = getattr(self, name)
            view[name] = value.isoformat() if value else None
        return view
