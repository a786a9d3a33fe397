"""Pytest fixtures that start the fake targets for one test and stop them after.

Register them for the whole suite with ``pytest_plugins = ["fakes.fixtures"]``
in ``tests/conftest.py``, or import the fixtures by name in a package's
``conftest.py``.

    def test_delivery(slack_fake, pagerduty_fake, webhook_receiver): ...

Each fake listens on its own ephemeral port on 127.0.0.1. The signed
receiver fixture, ``signed_webhook_receiver``, verifies signatures with
``WEBHOOK_SHARED_KEY``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.pagerduty import PagerDutyFake
from fakes.slack import SlackFake
from fakes.webhook_receiver import WebhookReceiver

# A fixed 32-byte key (base64url) so failures are reproducible; never a
# production secret.
WEBHOOK_SHARED_KEY = "dGVzdC1vbmx5LXNoYXJlZC1rZXktMzItYnl0ZXMhISE"


@pytest.fixture
def slack_fake() -> Iterator[SlackFake]:
    """A fake Slack Web API; accepts ``fakes.slack.DEFAULT_TOKEN`` in #alerts."""
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def pagerduty_fake() -> Iterator[PagerDutyFake]:
    """A fake PagerDuty Events API v2 that accepts any 32-character key."""
    with PagerDutyFake() as fake:
        yield fake


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver that accepts unsigned requests."""
    with WebhookReceiver() as fake:
        yield fake


@pytest.fixture
def signed_webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook receiver that requires a signature made with WEBHOOK_SHARED_KEY."""
    with WebhookReceiver(shared_key=WEBHOOK_SHARED_KEY) as fake:
        yield fake
