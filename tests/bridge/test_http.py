"""Tests of the outbound client and `AiohttpTransport` against real local servers.

Each test starts an asyncio server on 127.0.0.1 that records the raw bytes
of every request and responds with scripted bytes, so an assertion checks
the request exactly as it left the transport and the server can misbehave in
ways a real HTTP server would not.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import logging
import socket
import ssl
import struct
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from reliability.faults import FaultServer, self_signed_tls

from bridge.http import AiohttpTransport, InvalidResponse, outbound_client
from bridge.targets.base import Retry
from bridge.targets.common import transport_retry

T = TypeVar("T")

# A reply writes to the connection and returns True to serve the next
# request on the same connection.
Reply = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def answer(raw: bytes) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        await writer.drain()
        return True

    return reply


async def close_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    return False


def reset_connection(head: bytes = b"") -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(head)
        await writer.drain()
        # SO_LINGER with a zero timeout makes close() send a RST.
        writer.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        return False

    return reply


async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    # Waits until the client gives up and closes the connection.
    await reader.read()
    return False


def close_after(head: bytes) -> Reply:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(head)
        await writer.drain()
        return False

    return reply


class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that responds to each request from a script.

    ``requests`` contains every request's head and body bytes as they arrived.
    """

    def __init__(self, *replies: Reply) -> None:
        self._replies = list(replies)
        self.requests: list[bytes] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        # Python 3.11's wait_closed does not wait for open connections. The
        # client closes its own first, so each handler reads EOF and ends.
        if self._handlers:
            _, stuck = await asyncio.wait(self._handlers, timeout=5.0)
            assert not stuck, "a connection stayed open after the client closed"

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            while await self._read_request(reader):
                reply = self._replies.pop(0) if self._replies else answer(OK)
                if not await reply(reader, writer):
                    break
        finally:
            writer.close()
            # The client may have reset the connection already.
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _read_request(self, reader: asyncio.StreamReader) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return False
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.requests.append(head + body)
        return True


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(main: Callable[[], Coroutine[object, object, T]]) -> T:
    return asyncio.run(main())


def cause_chain(error: BaseException) -> list[BaseException]:
    chain = []
    current: BaseException | None = error
    while current is not None:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def test_request_arrives_as_sent() -> None:
    url_path = "/hooks/a%2Fb/caf%C3%A9/%7Euser?token=x%2By&empty=&space=a%20b&list=[1]"

    async def main() -> RawServer:
        async with RawServer() as server, outbound_client(5.0) as client:
            response = await client.post(
                server.url + url_path,
                content=b'{"a": 1}\x00\xff',
                headers=[
                    ("Content-Type", "application/json"),
                    ("X-Twice", "1"),
                    ("X-Twice", "2"),
                ],
            )
            await client.put(server.url + "/untyped", content=b"raw")
            assert response.status_code == 200
            assert response.text == "ok"
        return server

    server = run(main)

    first, second = server.requests
    head, _, body = first.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == f"POST {url_path} HTTP/1.1".encode()
    assert body == b'{"a": 1}\x00\xff'
    assert b"Content-Type: application/json" in lines
    assert b"Content-Length: 10" in lines
    assert [line for line in lines if line.startswith(b"X-Twice")] == [
        b"X-Twice: 1",
        b"X-Twice: 2",
    ]
    assert len([line for line in lines if line.lower().startswith(b"host:")]) == 1
    # A body without a Content-Type goes without one, as httpx's transport sends it.
    assert b"content-type" not in second.lower()
    assert second.endswith(b"\r\n\r\nraw")


def test_caller_host_header_is_kept() -> None:
    async def main() -> RawServer:
        async with RawServer() as server, outbound_client(5.0) as client:
            await client.post(
                server.url + "/hook",
                content=b"{}",
                headers={"Host": "hooks.example:8443"},
            )
        return server

    server = run(main)

    (request,) = server.requests
    lines = request.split(b"\r\n")
    assert lines[0] == b"POST /hook HTTP/1.1"
    assert [line for line in lines if line.lower().startswith(b"host:")] == [
        b"Host: hooks.example:8443"
    ]


def test_redirect_returned_not_followed() -> None:
    redirect = (
        b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    )

    async def main() -> tuple[RawServer, httpx.Response]:
        async with (
            RawServer(answer(redirect)) as server,
            outbound_client(5.0) as client,
        ):
            response = await client.post(server.url + "/hook", content=b"{}")
        return server, response

    server, response = run(main)

    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"
    assert len(server.requests) == 1


SET_COOKIE = (
    b"HTTP/1.1 200 OK\r\nSet-Cookie: session=from-receiver-a; Path=/\r\n"
    b"Content-Length: 2\r\n\r\nok"
)


def test_transport_keeps_no_cookie() -> None:
    async def main() -> RawServer:
        async with RawServer(answer(SET_COOKIE)) as server:
            transport = AiohttpTransport()
            try:
                for path in ("/a", "/b"):
                    request = httpx.Request("POST", server.url + path, content=b"{}")
                    response = await transport.handle_async_request(request)
                    await response.aread()
            finally:
                await transport.aclose()
        return server

    server = run(main)

    _, second = server.requests
    assert b"cookie:" not in second.lower()


def test_client_sends_no_cookie_back() -> None:
    # httpx's client has a cookie jar of its own in front of the transport's.
    # The webhook target pins receivers to addresses, so without a jar that
    # stores nothing, receivers behind one address would share cookies.
    async def main() -> tuple[RawServer, list[object]]:
        async with (
            RawServer(answer(SET_COOKIE)) as server,
            outbound_client(5.0) as client,
        ):
            await client.post(server.url + "/a", content=b"{}")
            await client.post(server.url + "/b", content=b"{}")
            return server, list(client.cookies.jar)

    server, stored = run(main)

    _, second = server.requests
    assert b"cookie:" not in second.lower()
    assert stored == []


def test_gzip_body_decoded() -> None:
    compressed = gzip.compress(b"disk /data: 4 % free")
    raw = (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: text/plain\r\n"
        b"Content-Length: %d\r\n\r\n" % len(compressed)
    ) + compressed

    async def main() -> httpx.Response:
        async with RawServer(answer(raw)) as server, outbound_client(5.0) as client:
            return await client.get(server.url + "/")

    response = run(main)

    assert response.text == "disk /data: 4 % free"
    # Decoded by the transport, which removes the header so that httpx does
    # not decode the body a second time.
    assert "content-encoding" not in response.headers


def request_error(
    reply: Reply | None, timeout: httpx.Timeout | None = None
) -> tuple[httpx.TransportError, RawServer | None]:
    """POST once to a server that runs ``reply`` and return the error raised."""
    timeout = timeout or httpx.Timeout(5.0)

    async def main() -> tuple[httpx.TransportError, RawServer | None]:
        if reply is None:
            # Bound and closed: nothing listens there.
            with socket.socket() as unused:
                unused.bind(("127.0.0.1", 0))
                url = f"http://127.0.0.1:{unused.getsockname()[1]}/"
            async with outbound_client(5.0) as client:
                with pytest.raises(httpx.TransportError) as caught:
                    await client.post(url, content=b"{}", timeout=timeout)
            return caught.value, None
        async with RawServer(reply) as server, outbound_client(5.0) as client:
            with pytest.raises(httpx.TransportError) as caught:
                await client.post(server.url + "/", content=b"{}", timeout=timeout)
        return caught.value, server

    return run(main)


PARTIAL_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b'{"partial": "'


@pytest.mark.parametrize(
    ("reply", "expected", "cause"),
    [
        (None, httpx.ConnectError, "ClientConnectorError"),
        # The server closes with no response: aiohttp's ServerDisconnectedError.
        (close_connection, httpx.RemoteProtocolError, "ServerDisconnectedError"),
        # A reset before any response is an OS error, so the type is httpx's
        # base class of network errors, not ReadError as with httpx's transport.
        (reset_connection(), httpx.NetworkError, "ClientOSError"),
        # A body cut short fails the payload read, with a clean close or a reset.
        (close_after(PARTIAL_HEAD), httpx.ReadError, "ClientPayloadError"),
        (reset_connection(PARTIAL_HEAD), httpx.ReadError, "ClientPayloadError"),
        # aiohttp's C parser reads bytes after a 204 as the next status line
        # and fails the 204 itself, where httpx's transport returned the 204.
        (
            answer(b"HTTP/1.1 204 No Content\r\n\r\ngarbage\r\n"),
            InvalidResponse,
            "ClientResponseError",
        ),
        # The same with a body after a 204, as Python's http.server sends one.
        (
            answer(b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nnope"),
            InvalidResponse,
            "ClientResponseError",
        ),
    ],
    ids=[
        "refused",
        "closed-after-request",
        "reset-after-request",
        "closed-mid-body",
        "reset-mid-body",
        "204-then-garbage",
        "204-with-body",
    ],
)
def test_error_mapped_with_cause(
    reply: Reply | None, expected: type[httpx.TransportError], cause: str
) -> None:
    error, server = request_error(reply)

    assert type(error) is expected
    assert type(error.__cause__).__name__ == cause
    assert type(error.__cause__).__module__.startswith("aiohttp")
    assert isinstance(error.request, httpx.Request)
    if server is not None:
        # A POST is never sent again on a new connection.
        assert len(server.requests) == 1


def test_silent_server_read_timeout() -> None:
    error, server = request_error(hang, httpx.Timeout(5.0, read=0.2))

    assert type(error) is httpx.ReadTimeout
    assert type(error.__cause__).__name__ == "SocketTimeoutError"
    assert server is not None
    assert len(server.requests) == 1


def test_self_signed_certificate_named(tmp_path: Path) -> None:
    server_context, _ = self_signed_tls(tmp_path)

    async def main() -> httpx.TransportError:
        with FaultServer(tls=server_context) as server:
            async with outbound_client(5.0) as client:
                with pytest.raises(httpx.TransportError) as caught:
                    await client.post(server.url + "/hook", content=b"{}")
        return caught.value

    error = run(main)

    assert type(error) is httpx.ConnectError
    verify_messages = [
        getattr(item, "verify_message", None)
        for item in cause_chain(error)
        if isinstance(item, ssl.SSLCertVerificationError)
    ]
    assert "self-signed certificate" in verify_messages
    assert transport_retry(error, "the webhook receiver") == Retry(
        "the TLS certificate of the webhook receiver did not verify: "
        "self-signed certificate"
    )


def test_trusted_certificate_works(tmp_path: Path) -> None:
    server_context, certificate = self_signed_tls(tmp_path)
    trusted = ssl.create_default_context(cafile=str(certificate))

    async def main() -> httpx.Response:
        with FaultServer(tls=server_context) as server:
            transport = AiohttpTransport(ssl_context=trusted)
            async with httpx.AsyncClient(transport=transport) as client:
                return await client.post(server.url + "/hook", content=b"{}")

    response = run(main)

    assert response.status_code == 200
    assert response.json() == {}


def clear_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"])
def test_proxy_keeps_httpx_transport(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, variable: str
) -> None:
    clear_proxies(monkeypatch)
    # Port 9 (discard) on loopback: nothing is sent, the client is only built.
    monkeypatch.setenv(variable, "http://user:proxy-password@127.0.0.1:9")
    caplog.set_level(logging.INFO, logger="bridge.http")

    async def main() -> httpx.AsyncClient:
        async with outbound_client(5.0) as client:
            return client

    client = run(main)

    assert not isinstance(client._transport, AiohttpTransport)
    assert isinstance(client._transport, httpx.AsyncHTTPTransport)
    assert any(transport is not None for transport in client._mounts.values())
    assert "transport=httpx" in caplog.text
    assert "proxy-password" not in caplog.text


@pytest.mark.parametrize("no_proxy", [None, "127.0.0.1"])
def test_no_proxy_uses_aiohttp(
    monkeypatch: pytest.MonkeyPatch, no_proxy: str | None
) -> None:
    clear_proxies(monkeypatch)
    if no_proxy is not None:
        # NO_PROXY alone names no proxy to use.
        monkeypatch.setenv("NO_PROXY", no_proxy)

    async def main() -> httpx.AsyncClient:
        async with outbound_client(5.0) as client:
            return client

    client = run(main)

    assert isinstance(client._transport, AiohttpTransport)
    assert client.follow_redirects is False


def test_aclose_closes_session() -> None:
    async def main() -> tuple[AiohttpTransport, object]:
        async with RawServer() as server:
            client = outbound_client(5.0)
            transport = client._transport
            assert isinstance(transport, AiohttpTransport)
            await client.post(server.url + "/", content=b"{}")
            session = transport._session
            assert session is not None
            await client.aclose()
        return transport, session

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transport, session = run(main)
        gc.collect()

    assert transport._session is None
    assert session.closed  # type: ignore[attr-defined]
    assert [item for item in caught if issubclass(item.category, ResourceWarning)] == []


def test_invalid_response_named_in_reason() -> None:
    """A reply that is not HTTP/1.1 gets a retry naming it, not "could not reach"."""
    error, _ = request_error(
        answer(b"HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nnope")
    )

    outcome = transport_retry(error, "the webhook receiver")

    assert outcome.reason == (
        "the webhook receiver sent a response that is not valid HTTP/1.1"
    )


def test_client_offers_only_decoded_codings() -> None:
    """The client offers the codings that the transport decodes, and no others."""

    async def main() -> str:
        async with outbound_client(5.0) as client:
            return client.headers["accept-encoding"]

    assert run(main) == "gzip, deflate"
