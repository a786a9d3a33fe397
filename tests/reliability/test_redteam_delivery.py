"""Hostile receivers and unlucky timing against the outbound delivery path.

The receivers here are raw asyncio servers on 127.0.0.1, so a test can send
bytes that no well-behaved HTTP server would: bodies far over any limit,
gzip bombs, codings that the request did not accept. Requests go through
the bridge's own `outbound_client` and targets, and the worker tests run
the whole app.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import logging
import threading
import time
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.webhook_receiver import WebhookReceiver
from starlette.exceptions import StarletteDeprecationWarning

from bridge import http
from bridge.app import create_app
from bridge.config import Settings
from bridge.integrations import PAGERDUTY, SLACK, WEBHOOK, Integration
from bridge.model import DiskKey, Event, EventType, Level
from bridge.store.base import DELIVERED, PENDING, Delivery, Transitions
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Delivered, Failed, Retry, SendContext
from bridge.targets.common import make_test_event
from bridge.targets.pagerduty import PagerDutyTarget
from bridge.targets.slack import SlackTarget
from bridge.targets.webhook import WebhookTarget
from bridge.text import json_bytes
from reliability.inprocess import (
    ADMIN_TOKEN,
    BEARER,
    BRIDGE_TOKEN,
    bridge_app,
    firing_message,
)

with warnings.catch_warnings():
    # As in reliability.inprocess: Starlette warns at import about httpx2.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

# Reads the request head and writes the response bytes.
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

MIB = 1024 * 1024


def in_event_loop(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test function in a fresh event loop."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request head and its Content-Length body; return the head."""
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            await reader.readexactly(int(value))
    return head


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """Serve ``handler`` on 127.0.0.1 and yield the base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def responder(head: bytes, body: bytes = b"", repeat: int = 1) -> Handler:
    """Respond to each request on a connection with ``head`` and ``body``."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        while True:
            await read_request(reader)
            writer.write(head + b"\r\n\r\n")
            for _ in range(repeat):
                writer.write(body)
                await writer.drain()

    return handler


async def post(url: str) -> httpx.Response:
    client = http.outbound_client(5.0)
    try:
        return await client.post(url, content=b"{}")
    finally:
        await client.aclose()


@in_event_loop
async def test_huge_body_kept_to_limit() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d" % (200 * MIB)
    handler = responder(head, b"x" * MIB, repeat=200)

    async with raw_server(handler) as url:
        started = time.monotonic()
        response = await post(url)

    assert response.status_code == 200
    assert len(response.content) == http.MAX_RESPONSE_BYTES
    # Reading all 200 MiB takes several seconds here.
    assert time.monotonic() - started < 2.0


@in_event_loop
async def test_endless_chunked_body_cut_off() -> None:
    chunk = b"%x\r\n%s\r\n" % (MIB, b"y" * MIB)
    handler = responder(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", chunk, 10**6)

    async with raw_server(handler) as url:
        response = await asyncio.wait_for(post(url), 5.0)

    assert response.status_code == 200
    assert len(response.content) == http.MAX_RESPONSE_BYTES


@pytest.mark.parametrize("coding", ["gzip", "gzip, gzip", "deflate"])
@in_event_loop
async def test_compression_bomb_kept_to_limit(coding: str) -> None:
    payload = b"\0" * (64 * MIB)
    for name in coding.split(", "):
        payload = gzip.compress(payload) if name == "gzip" else zlib.compress(payload)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d" % (
        coding.encode(),
        len(payload),
    )

    async with raw_server(responder(head, payload)) as url:
        response = await post(url)

    assert response.status_code == 200
    assert len(response.content) <= http.MAX_RESPONSE_BYTES


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        # Raw deflate without zlib framing, as some servers send it.
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),
        ("identity", lambda data: data),
    ],
)
@in_event_loop
async def test_encoded_body_decoded(
    coding: str, encode: Callable[[bytes], bytes]
) -> None:
    payload = encode(b'{"ok": true}')
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\nContent-Length: %d" % (
        coding.encode(),
        len(payload),
    )

    async with raw_server(responder(head, payload)) as url:
        response = await post(url)

    assert response.json() == {"ok": True}


@in_event_loop
async def test_unknown_coding_passed_undecoded() -> None:
    payload = gzip.compress(b"z" * MIB)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip, br\r\nContent-Length: %d" % (
        len(payload)
    )

    async with raw_server(responder(head, payload)) as url:
        response = await post(url)

    assert response.content == payload


@in_event_loop
async def test_invalid_gzip_raises_decoding_error() -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9"

    async with raw_server(responder(head, b"not gzip!")) as url:
        with pytest.raises(httpx.DecodingError):
            await post(url)


def webhook_context(url: str, client: httpx.AsyncClient) -> SendContext:
    integration = Integration(id="hook", type=WEBHOOK, settings={"url": url})
    return SendContext(integration=integration, client=client)


@in_event_loop
async def test_webhook_url_with_userinfo_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        heads.append(await read_request(reader))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()

    caplog.set_level(logging.DEBUG, logger="bridge")
    client = http.outbound_client(5.0)
    async with raw_server(handler) as base:
        url = base.replace("http://", "http://alice:s3cret%2Fpw@") + "/hook%7Eapi"
        outcome = await WebhookTarget(allow_private_targets=True).send(
            make_test_event(), webhook_context(url, client)
        )
    await client.aclose()

    assert outcome == Delivered()
    assert heads[0].startswith(b"POST /hook%7Eapi HTTP/1.1\r\n")
    # base64 of "alice:s3cret/pw": httpx sends the userinfo as basic auth.
    assert b"Authorization: Basic YWxpY2U6czNjcmV0L3B3\r\n" in heads[0]
    assert b"s3cret" not in heads[0].split(b"\r\n")[0]
    assert "s3cret" not in caplog.text


@pytest.mark.parametrize(
    ("status_line", "expected"),
    [
        # A reason phrase that is not UTF-8 or Latin-1 text.
        (b"HTTP/1.1 503 \xff\xfe Serv\x80ice", Retry),
        # HTTP/1.0 without a length: the body ends with the connection.
        (b"HTTP/1.0 200 OK", Delivered),
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nSet-Cookie: s=1",
            Failed,
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted", Delivered),
    ],
)
@in_event_loop
async def test_odd_response_classified(status_line: bytes, expected: type) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        await read_request(reader)
        writer.write(status_line + b"\r\nConnection: close\r\n\r\n")
        await writer.drain()

    client = http.outbound_client(5.0)
    async with raw_server(handler) as url:
        outcome = await WebhookTarget(allow_private_targets=True).send(
            make_test_event(), webhook_context(url + "/hook", client)
        )
    await client.aclose()

    assert isinstance(outcome, expected)


async def answer_once_then_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Serve one empty 200 on the connection, which then closes unannounced."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


@in_event_loop
async def test_receiver_restart_between_requests() -> None:
    # Each connection serves one response, then the receiver closes it while
    # the bridge keeps it as an idle keep-alive connection.
    client = http.outbound_client(5.0)
    target = WebhookTarget(allow_private_targets=True)
    outcomes = []
    async with raw_server(answer_once_then_close) as url:
        context = webhook_context(url + "/hook", client)
        for _ in range(3):
            outcomes.append(await target.send(make_test_event(), context))
            await asyncio.sleep(0.05)
    await client.aclose()

    assert outcomes == [Delivered()] * 3


def test_slow_integration_does_not_delay_another(tmp_path: Path) -> None:
    disks = 60
    message = firing_message()
    template = message["alerts"][0]
    message["alerts"] = [
        {**template, "labels": {**template["labels"], "service": f"disk-{index}"}}
        for index in range(disks)
    ]
    slow = WebhookReceiver()
    fast = WebhookReceiver()
    with slow, fast:
        # The slow receiver delays every response until the test ends.
        slow.delay_next(disks + 10, seconds=60.0)
        integrations = [
            Integration(id="a-slow", type=WEBHOOK, settings={"url": slow.url + "/a"}),
            Integration(id="b-fast", type=WEBHOOK, settings={"url": fast.url + "/b"}),
        ]
        with bridge_app(tmp_path, integrations, delivery_timeout_seconds=30) as app:
            assert app.post(message) == 200
            wait_for_events(fast, disks)

            assert app.post(firing_message(disk="late")) == 200
            started = time.monotonic()
            wait_for_events(fast, disks + 1)
            latency = time.monotonic() - started
            late = wait_for_delivery(app.store, "b-fast", "late")
            slow_requests = len(slow.requests)

    assert latency < 3.0
    assert late.status == DELIVERED
    # The slow integration still has its 8 slots, and no more.
    assert slow_requests == 8


def wait_for_delivery(store: SQLiteStore, integration: str, service: str) -> Delivery:
    deadline = time.monotonic() + 10.0
    while True:
        for delivery in store.list_deliveries(limit=1000):
            labels = delivery.event.disk.as_dict()
            if (
                delivery.integration_id == integration
                and labels["service"] == service
                and delivery.status != PENDING
            ):
                return delivery
        assert time.monotonic() < deadline, f"{integration} {service} still pending"
        time.sleep(0.01)


def wait_for_events(receiver: WebhookReceiver, count: int) -> None:
    deadline = time.monotonic() + 10.0
    while len(receiver.events) < count:
        assert time.monotonic() < deadline, f"{len(receiver.events)} of {count}"
        time.sleep(0.01)


class StalledStore(SQLiteStore):
    """A store whose commits of a delivered outcome wait until `resume`."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.resumed = threading.Event()

    def mark_delivered(
        self, delivery_id: int, now: datetime, thread_ref: str | None
    ) -> None:
        self.resumed.wait(10.0)
        super().mark_delivered(delivery_id, now, thread_ref)


def test_stalled_commits_bound_unrecorded_sends(tmp_path: Path) -> None:
    disks = 80
    message = firing_message()
    template = message["alerts"][0]
    message["alerts"] = [
        {**template, "labels": {**template["labels"], "service": f"disk-{index}"}}
        for index in range(disks)
    ]
    settings = Settings(
        db=str(tmp_path / "bridge.db"),
        bridge_token=BRIDGE_TOKEN,
        admin_token=ADMIN_TOKEN,
        allow_private_targets=True,
        delivery_poll_seconds=0.02,
        delivery_max_in_flight_per_integration=16,
    )
    store = StalledStore(settings.db)
    receiver = WebhookReceiver()
    with receiver:
        store.create_integration(
            Integration(id="hook", type=WEBHOOK, settings={"url": receiver.url})
        )
        app = create_app(settings, store=store)
        try:
            with TestClient(app, base_url="http://127.0.0.1") as client:
                response = client.post("/alertmanager", json=message, headers=BEARER)
                # Long enough for the worker to send every disk's delivery.
                time.sleep(1.0)
                sent_while_stalled = len(receiver.requests)
                store.resumed.set()
                deadline = time.monotonic() + 10.0
                while store.list_deliveries(limit=1000, status=PENDING):
                    assert time.monotonic() < deadline, "deliveries still pending"
                    time.sleep(0.02)
                delivered = store.list_deliveries(limit=1000, status=DELIVERED)
        finally:
            store.resumed.set()
            store.close()

    assert response.status_code == 200
    # Sent but not recorded: these are sent again after a crash.
    assert sent_while_stalled <= 2 * settings.delivery_max_in_flight
    assert len(delivered) == disks
    assert len(receiver.requests) == disks


def test_prune_races_dead_letter_requeue(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "bridge.db")
    store.create_integration(Integration(id="hook", type=WEBHOOK))
    message_disks = [
        DiskKey.from_alert_labels({"project": "p", "mountpoint": f"/{number}"})
        for number in range(300)
    ]
    now = datetime.now(UTC)
    events = [
        Event(
            id=f"event-{number}",
            type=EventType.WARNING,
            disk=disk,
            level=Level.WARNING,
            previous_level=Level.OK,
            occurred_at=now,
        )
        for number, disk in enumerate(message_disks)
    ]
    store.apply_transitions([], lambda current: Transitions(events=events))
    dead_ids = sorted(delivery.id for delivery in store.list_deliveries(limit=1000))
    for delivery_id in dead_ids:
        store.mark_dead(delivery_id, now, "receiver answered HTTP 400")
    # Every dead letter is past the retention of this cutoff.
    cutoff = now + timedelta(days=1)
    requeued: list[int] = []
    not_found: list[int] = []

    def prune_all() -> None:
        while store.prune(cutoff, 7).rows == 7:
            pass

    def requeue_all() -> None:
        for delivery_id in dead_ids:
            try:
                requeued.append(store.requeue_delivery(delivery_id, now).id)
            except LookupError:
                not_found.append(delivery_id)

    threads = [threading.Thread(target=prune_all), threading.Thread(target=requeue_all)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    remaining = store.list_deliveries(limit=1000)
    due = store.due_deliveries(now + timedelta(seconds=1), 1000)
    store.close()

    assert sorted(requeued + not_found) == dead_ids
    assert sorted(delivery.id for delivery in remaining) == sorted(requeued)
    assert {delivery.status for delivery in remaining} <= {PENDING}
    # Each requeued delivery still has its event, so the worker can send it.
    assert sorted(delivery.id for delivery in due) == sorted(requeued)


@in_event_loop
async def test_back_to_back_after_receiver_close() -> None:
    # The receiver closes each connection after its response without a
    # "Connection: close", so the bridge still keeps it for reuse.
    client = http.outbound_client(5.0)
    async with raw_server(answer_once_then_close) as url:
        statuses = []
        for _ in range(10):
            response = await client.post(url + "/hook", content=b"{}")
            statuses.append(response.status_code)
    await client.aclose()

    assert statuses == [200] * 10


def echoing_handler(status: bytes) -> Handler:
    """Respond with ``status`` and a body that quotes the request."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        # The Authorization header first, so that truncation keeps it.
        authorization = [
            line for line in head.split(b"\r\n") if line.startswith(b"Authorization")
        ]
        echo = b" ".join([*authorization, head.split(b"\r\n")[0], body[:200]])
        answer = b'{"message": "invalid", "errors": [%s], "ok": false, "error": %s}' % (
            json_bytes(echo.decode()),
            json_bytes(echo.decode()),
        )
        writer.write(
            b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n" % (status, len(answer))
            + answer
        )
        await writer.drain()

    return handler


@in_event_loop
async def test_reasons_mask_echoed_secrets() -> None:
    path_secret = "T0B0pathsecret9"
    query_secret = "query-secret-7"
    routing_key = "R0UT1NGKEY0123456789abcdef012345"
    token = "xoxb-echoed-token-4242"
    client = http.outbound_client(5.0)

    async with raw_server(echoing_handler(b"404 Not Found")) as url:
        hook = f"{url}/services/{path_secret}?token={query_secret}"
        webhook = await WebhookTarget(allow_private_targets=True).send(
            make_test_event(), webhook_context(hook, client)
        )
    async with raw_server(echoing_handler(b"400 Bad Request")) as url:
        pagerduty = await PagerDutyTarget(url + "/v2/enqueue").send(
            make_test_event(),
            SendContext(
                integration=Integration(
                    id="pd", type=PAGERDUTY, secrets={"routing_key": routing_key}
                ),
                client=client,
            ),
        )
    async with raw_server(echoing_handler(b"200 OK")) as url:
        slack = await SlackTarget(url + "/api").send(
            make_test_event(),
            SendContext(
                integration=Integration(
                    id="slack",
                    type=SLACK,
                    settings={"channel": "C0"},
                    secrets={"token": token},
                ),
                client=client,
            ),
        )
    await client.aclose()

    assert isinstance(webhook, Failed)
    assert webhook.reason.startswith("the webhook receiver answered HTTP 404: {")
    assert path_secret not in webhook.reason
    assert query_secret not in webhook.reason
    assert isinstance(pagerduty, Failed)
    assert pagerduty.reason.startswith("PagerDuty rejected the event: invalid; ")
    assert routing_key not in pagerduty.reason
    assert isinstance(slack, Failed)
    assert slack.reason.startswith("Slack rejected the message: ")
    assert token not in slack.reason


def test_huge_retry_after_schedules_once(tmp_path: Path) -> None:
    receiver = WebhookReceiver()
    with receiver:
        # About 31,700 years: past the largest datetime.
        receiver.fail_next(100, status=429, headers={"Retry-After": "1000000000000"})
        integration = Integration(
            id="hook", type=WEBHOOK, settings={"url": receiver.url}
        )
        with bridge_app(tmp_path, [integration]) as app:
            assert app.post(firing_message()) == 200
            app.attempts_at_least(1)
            time.sleep(0.5)
            requests = len(receiver.requests)
            (delivery,) = app.store.list_deliveries()

    assert requests == 1
    assert delivery.status == PENDING
    assert delivery.attempts == 1
    assert delivery.last_error == "the webhook receiver answered HTTP 429"
    # The last attempt is due when the delivery reaches its maximum age.
    assert delivery.next_attempt_at == delivery.created_at + timedelta(
        seconds=app.settings.delivery_max_age_seconds
    )


class BrokenRetryStore(SQLiteStore):
    """A store whose retry commits raise an error that is not a StoreError."""

    def mark_retry(
        self, delivery_id: int, next_attempt_at: datetime, error: str
    ) -> None:
        raise RuntimeError("a bug in the store")


def test_unexpected_record_error_held_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        db=str(tmp_path / "bridge.db"),
        bridge_token=BRIDGE_TOKEN,
        admin_token=ADMIN_TOKEN,
        allow_private_targets=True,
        delivery_poll_seconds=0.02,
    )
    store = BrokenRetryStore(settings.db)
    receiver = WebhookReceiver()
    with receiver:
        receiver.fail_next(100, status=503)
        store.create_integration(
            Integration(id="hook", type=WEBHOOK, settings={"url": receiver.url})
        )
        app = create_app(settings, store=store)
        try:
            with TestClient(app, base_url="http://127.0.0.1") as client:
                response = client.post(
                    "/alertmanager", json=firing_message(), headers=BEARER
                )
                time.sleep(0.5)
                requests = len(receiver.requests)
        finally:
            store.close()

    assert response.status_code == 200
    # Held for the first backoff step, not sent again in a loop.
    assert requests == 1
    assert "delivery outcome not recorded" in caplog.text
    assert "exception=RuntimeError" in caplog.text
