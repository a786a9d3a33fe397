"""Each fault a target can show, and how the delivery ends.

The bridge app runs in this process with its real targets and worker (see
`inprocess`), and delivers over real sockets to servers on 127.0.0.1: the
fakes of Slack and PagerDuty, and `FaultServer` for faults below the API.
Transient faults end delivered once the target recovers; final ones end
as dead letters whose reason names the fault. Every retry waits at least
the lower bound of the configured backoff, and at least ``Retry-After``.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e.processes import free_port
from fakes.pagerduty import PagerDutyFake
from fakes.server import RecordedRequest, Response
from fakes.slack import DEFAULT_TOKEN, SlackFake

from bridge.integrations import PAGERDUTY, SLACK, WEBHOOK, Integration
from bridge.store.base import DEAD, DELIVERED
from reliability.faults import (
    Answer,
    Behaviour,
    FaultServer,
    Hang,
    ResetMidBody,
    self_signed_tls,
)
from reliability.inprocess import bridge_app, firing_message

BACKOFF_BASE = 0.2
BACKOFF_MAX = 0.8
TIMEOUT = 0.5
FAST: dict[str, Any] = {
    "delivery_backoff_base_seconds": BACKOFF_BASE,
    "delivery_backoff_max_seconds": BACKOFF_MAX,
    "delivery_timeout_seconds": TIMEOUT,
}
# Arrival times come from another thread's clock reads; allow this much
# slack below a bound.
CLOCK_SLACK = 0.02
ROUTING_KEY = "fault0matrix0routing0key00000000"


def minimum_gap(failures: int) -> float:
    """Return the least wait the backoff allows after ``failures`` failures."""
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (failures - 1)) / 2


def assert_backoff(times: list[float], retry_after: float = 0.0) -> None:
    for failures, (earlier, later) in enumerate(itertools.pairwise(times), start=1):
        least = max(minimum_gap(failures), retry_after)
        assert later - earlier >= least - CLOCK_SLACK, (failures, times)


def webhook(url: str) -> Integration:
    return Integration(id="hook", type=WEBHOOK, settings={"url": url})


def retry_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "bridge.outbox" and "delivery retry" in record.getMessage()
    ]


class TimedSlack(SlackFake):
    """The Slack fake, also noting when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def _handle(self, request: RecordedRequest) -> Response:
        self.times.append(time.monotonic())
        return super()._handle(request)


class TimedPagerDuty(PagerDutyFake):
    """The PagerDuty fake, also noting when each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def _handle(self, request: RecordedRequest) -> Response:
        self.times.append(time.monotonic())
        return super()._handle(request)


@pytest.fixture
def slack() -> Iterator[TimedSlack]:
    with TimedSlack() as fake:
        yield fake


@pytest.fixture
def pagerduty() -> Iterator[TimedPagerDuty]:
    with TimedPagerDuty() as fake:
        yield fake


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ([Answer(500), Answer(500)], "the webhook receiver answered HTTP 500"),
        ([Answer(503), Answer(503)], "the webhook receiver answered HTTP 503"),
        # A response cut off by a TCP reset after 13 of 1,000 bytes.
        ([ResetMidBody(), ResetMidBody()], "could not reach the webhook receiver"),
        # Reads the request and never answers.
        ([Hang()], "timed out|did not answer in time"),
        # Answers after 30 s; the attempt gives up after TIMEOUT seconds.
        ([Answer(200, delay=30)], "timed out|did not answer in time"),
        ([Answer(429)], "the webhook receiver answered HTTP 429"),
    ],
    ids=["500", "503", "reset-mid-body", "no-answer", "answer-after-30s", "429"],
)
def test_webhook_transient_fault_then_delivered(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    script: list[Behaviour],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    with FaultServer(script) as server:
        with bridge_app(tmp_path, [webhook(server.url + "/hook")], **FAST) as bridge:
            assert bridge.post(firing_message()) == 200
            (delivery,) = bridge.settled()
        arrivals = server.arrivals

    assert delivery.status == DELIVERED
    assert delivery.attempts == len(script) + 1
    assert len(arrivals) == len(script) + 1
    # Every attempt, also the one that timed out, carries the same event id.
    assert {a.headers["x-webpaas-event-id"] for a in arrivals} == {delivery.event.id}
    assert_backoff([arrival.at for arrival in arrivals])
    reasons = retry_reasons(caplog)
    assert len(reasons) == len(script)
    assert all(re.search(reason, text) for text in reasons), reasons


def test_webhook_429_retry_after_is_honoured(tmp_path: Path) -> None:
    script = [Answer(429, headers={"Retry-After": "1"})]
    with FaultServer(script) as server:
        with bridge_app(tmp_path, [webhook(server.url + "/hook")], **FAST) as bridge:
            assert bridge.post(firing_message()) == 200
            (delivery,) = bridge.settled()
        times = [arrival.at for arrival in server.arrivals]

    assert delivery.status == DELIVERED
    assert len(times) == 2
    assert_backoff(times, retry_after=1.0)


def test_webhook_connection_refused_then_delivered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"

    with bridge_app(tmp_path, [webhook(url)], **FAST) as bridge:
        assert bridge.post(firing_message()) == 200
        bridge.attempts_at_least(2)
        with FaultServer(port=port) as server:
            (delivery,) = bridge.settled()
            arrivals = server.arrivals

    assert delivery.status == DELIVERED
    assert delivery.attempts >= 3
    assert len(arrivals) == 1
    reasons = retry_reasons(caplog)
    assert len(reasons) == delivery.attempts - 1
    assert all(
        "could not reach the webhook receiver (ConnectError)" in r for r in reasons
    )


def test_webhook_outage_retries_keep_backoff(tmp_path: Path) -> None:
    """Five deliveries against a receiver down for 2 s: no attempt comes early."""
    script = [Answer(503)] * 200
    with FaultServer(script) as server:
        with bridge_app(tmp_path, [webhook(server.url + "/hook")], **FAST) as bridge:
            for disk in range(5):
                assert bridge.post(firing_message(f"d{disk}")) == 200
            bridge.attempts_at_least(4)
            time.sleep(1.0)
            server.recover()
            deliveries = bridge.settled()
        arrivals = server.arrivals

    assert [d.status for d in deliveries] == [DELIVERED] * 5
    by_event: dict[str, list[float]] = {}
    for arrival in arrivals:
        by_event.setdefault(arrival.headers["x-webpaas-event-id"], []).append(
            arrival.at
        )
    assert len(by_event) == 5
    for times in by_event.values():
        assert len(times) >= 4
        assert_backoff(times)


def test_in_flight_limit_per_integration(tmp_path: Path) -> None:
    """Eight disks at once, two attempts in flight at most, as configured."""
    with (
        FaultServer(default=Answer(200, delay=0.3)) as server,
        bridge_app(
            tmp_path,
            [webhook(server.url + "/hook")],
            delivery_max_in_flight_per_integration=2,
            **FAST,
        ) as bridge,
    ):
        for disk in range(8):
            assert bridge.post(firing_message(f"d{disk}")) == 200
        deliveries = bridge.settled()

    assert [d.status for d in deliveries] == [DELIVERED] * 8
    assert server.max_concurrent == 2


def test_tls_certificate_not_verified_by_default(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A self-signed certificate fails every attempt, then a dead letter."""
    caplog.set_level(logging.INFO, logger="bridge")
    context, certificate = self_signed_tls(tmp_path)
    with FaultServer(tls=context) as server:
        with bridge_app(
            tmp_path,
            [webhook(server.url + "/hook")],
            delivery_max_age_seconds=1.5,
            **FAST,
        ) as bridge:
            assert bridge.post(firing_message()) == 200
            (delivery,) = bridge.settled()
        failures = server.handshake_failures

        # The same server works for a client that trusts its certificate,
        # so the failures above are the certificate check.
        trusting = ssl.create_default_context(cafile=str(certificate))
        trusted = httpx.post(server.url + "/hook", content=b"{}", verify=trusting)

    assert delivery.status == DEAD
    assert delivery.last_error is not None
    assert delivery.last_error.startswith("gave up after 1.5 s: ")
    assert delivery.last_error.endswith(
        "the TLS certificate of the webhook receiver did not verify: "
        "self-signed certificate"
    )
    assert failures == delivery.attempts
    assert len(server.arrivals) == 1
    assert trusted.status_code == 200


@pytest.mark.parametrize(
    ("error", "status", "retry_after", "reason"),
    [
        ("ratelimited", 200, None, "ratelimited"),
        ("ratelimited", 429, 1.0, "Slack rate limit: ratelimited"),
        ("service_unavailable", 200, None, "service_unavailable"),
    ],
    ids=["ok-false-ratelimited", "http-429-retry-after", "ok-false-unavailable"],
)
def test_slack_transient_error_then_delivered(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    slack: TimedSlack,
    error: str,
    status: int,
    retry_after: float | None,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge")
    slack.fail_next_error(error, 2, status=status, retry_after=retry_after)
    integration = Integration(
        id="slack",
        type=SLACK,
        settings={"channel": "#alerts"},
        secrets={"token": DEFAULT_TOKEN},
    )

    with bridge_app(
        tmp_path, [integration], slack_api_url=slack.api_url, **FAST
    ) as bridge:
        assert bridge.post(firing_message()) == 200
        (delivery,) = bridge.settled()

    assert delivery.status == DELIVERED
    assert delivery.attempts == 3
    assert len(slack.messages) == 1
    assert_backoff(slack.times, retry_after=retry_after or 0.0)
    reasons = retry_reasons(caplog)
    assert len(reasons) == 2
    assert all(reason in text for text in reasons), reasons


@pytest.mark.parametrize(
    ("token_error", "channel", "reason"),
    [
        ("invalid_auth", "#alerts", "Slack rejected the token: invalid_auth"),
        (
            None,
            "#nowhere",
            "Slack could not post to the channel: channel_not_found",
        ),
    ],
    ids=["invalid_auth", "channel_not_found"],
)
def test_slack_final_error_dead_letter(
    tmp_path: Path,
    slack: TimedSlack,
    token_error: str | None,
    channel: str,
    reason: str,
) -> None:
    if token_error:
        slack.token_errors[DEFAULT_TOKEN] = token_error
    integration = Integration(
        id="slack",
        type=SLACK,
        settings={"channel": channel},
        secrets={"token": DEFAULT_TOKEN},
    )

    with bridge_app(
        tmp_path, [integration], slack_api_url=slack.api_url, **FAST
    ) as bridge:
        assert bridge.post(firing_message()) == 200
        (delivery,) = bridge.settled()

    assert delivery.status == DEAD
    assert delivery.attempts == 1
    assert delivery.last_error == reason
    assert len(slack.requests) == 1
    assert slack.messages == []


def test_pagerduty_429_then_delivered(
    tmp_path: Path, pagerduty: TimedPagerDuty
) -> None:
    pagerduty.fail_next(2, status=429, body={"status": "throttle event"})
    integration = Integration(
        id="pd", type=PAGERDUTY, secrets={"routing_key": ROUTING_KEY}
    )

    with bridge_app(
        tmp_path, [integration], pagerduty_events_url=pagerduty.events_url, **FAST
    ) as bridge:
        assert bridge.post(firing_message()) == 200
        (delivery,) = bridge.settled()

    assert delivery.status == DELIVERED
    assert delivery.attempts == 3
    assert len(pagerduty.events) == 1
    assert_backoff(pagerduty.times)


def test_pagerduty_400_dead_letter(tmp_path: Path, pagerduty: TimedPagerDuty) -> None:
    # One character short: the fake answers 400 as PagerDuty does.
    integration = Integration(
        id="pd", type=PAGERDUTY, secrets={"routing_key": ROUTING_KEY[:-1]}
    )

    with bridge_app(
        tmp_path, [integration], pagerduty_events_url=pagerduty.events_url, **FAST
    ) as bridge:
        assert bridge.post(firing_message()) == 200
        (delivery,) = bridge.settled()

    assert delivery.status == DEAD
    assert delivery.attempts == 1
    assert delivery.last_error == (
        "PagerDuty rejected the event: Event object is invalid; Length of "
        "'routing_key' is incorrect (should be 32 characters)"
    )
    assert ROUTING_KEY[:-1] not in json.dumps(delivery.last_error)
