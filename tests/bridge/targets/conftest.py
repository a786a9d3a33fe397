"""Fixtures for the target tests: the fake servers and the webhook schema."""

from __future__ import annotations

from typing import Any

import pytest
from fakes.fixtures import (  # noqa: F401 - pytest finds fixtures by name
    pagerduty_fake,
    signed_webhook_receiver,
    slack_fake,
    webhook_receiver,
)
from fakes.jsonschema_subset import load_webhook_schema


@pytest.fixture
def webhook_schema() -> dict[str, Any]:
    return load_webhook_schema()
