"""The bridge's outbound HTTP client: httpx's API on aiohttp's connections.

Every target sends through one `httpx.AsyncClient`, so their code, their
error handling and the tests' mock transports stay on httpx's types. With
its default transport (httpcore and h11, both pure Python) a request costs
about 0.7 ms of CPU on a 2-core machine, most of the 1 ms that a delivery
may take at 1,000 per second (docs/benchmarks.md, section 2).
`AiohttpTransport` hands each request to an `aiohttp.ClientSession`, whose
HTTP parser is in C: about 0.24 ms for the same request through the same
client (bench/http_client.py).

The transport keeps httpx's behaviour where the bridge relies on it:

- Redirects are never followed (the targets treat a 3xx as final).
- No cookies are kept between requests, so one receiver's cookie never
  reaches another.
- A ``Host`` header set by the caller is sent as it is, so a request to a
  pinned address still names the host (see `bridge.targets.webhook`).
- aiohttp's errors become httpx's, with the original as ``__cause__``, so
  a certificate that does not verify is still found and named.
- A ``gzip`` or ``deflate`` body is decoded here, as httpx's transport
  would have it decoded, but only up to `MAX_RESPONSE_BYTES`.

Every target needs at most a small JSON response, so the transport keeps the
first `MAX_RESPONSE_BYTES` of a body, before and after decoding, and drops
the rest with its connection. A receiver that responds with hundreds of
megabytes, or a small gzip body that expands to them, then costs one
mebibyte per request in flight.

aiohttp ignores proxies unless configured to use one, and httpx does not
mount the proxies of the environment on a client with its own transport.
So when ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``ALL_PROXY`` is set,
`outbound_client` keeps httpx's default transport, which honours them and
``NO_PROXY``.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import logging
import ssl
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import httpx
import yarl

logger = logging.getLogger(__name__)

# As httpx's defaults: connections in all, and seconds an idle one is kept.
MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0
# Bytes of a response body kept, before and after decoding. Slack's
# chat.postMessage response, the largest that a target reads, is a few KB.
MAX_RESPONSE_BYTES = 1024 * 1024
# zlib window sizes: gzip framing, zlib framing, raw deflate.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS


class InvalidResponse(httpx.RemoteProtocolError):
    """The peer responded with bytes that do not parse as an HTTP/1.1 response."""


# Most specific first: the first class that matches an aiohttp error names
# the httpx error raised for it.
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (TimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    # NOTE: aiohttp's C parser also fails a 204 or 304 that is followed by
    # bytes (a body, as Python's http.server sends one) this way, where
    # httpx's transport returns the status. The delivery is then retried
    # although the receiver accepted it. docs/formats/webhook.md tells
    # receivers to send no body with a 204.
    (aiohttp.ClientResponseError, InvalidResponse),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
)


@contextmanager
def _translated(request: httpx.Request) -> Iterator[None]:
    """Raise httpx's error for an aiohttp one, from the original."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as error:
        for source, target in _ERRORS:
            if isinstance(error, source):
                raise target(type(error).__name__, request=request) from error
        raise


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests over one `aiohttp.ClientSession`.

    The session is made on the first request, inside the running event
    loop, as aiohttp requires, and closed by `aclose`.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=self._ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            # httpx has already set every header the request carries, and
            # aiohttp would add a Content-Type to a body sent without one.
            skip_auto_headers=(
                "Accept",
                "Accept-Encoding",
                "Content-Type",
                "User-Agent",
            ),
            # Each request carries its own timeouts (see `_timeout`).
            timeout=aiohttp.ClientTimeout(total=None),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        body = await request.aread()
        # NOTE: aiohttp encodes header values as UTF-8, so a byte above 0x7F
        # in a value given to httpx as bytes arrives re-encoded. httpx itself
        # rejects such characters in str values, which is all the targets send.
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
        ]

        # A receiver that closes a keep-alive connection right after its
        # response leaves the FIN unread in the pool. One pass of the event
        # loop lets aiohttp see it and drop the connection. Otherwise this
        # request goes out on it and fails, and aiohttp retries only
        # idempotent methods on a new connection, never a POST.
        await asyncio.sleep(0)
        with _translated(request):
            async with self._session.request(
                request.method,
                _aiohttp_url(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=_timeout(request),
            ) as response:
                content = await _read_limited(response)
                raw_headers = list(response.raw_headers)
                status = response.status
                reason = response.reason

        content, raw_headers = _decoded(content, raw_headers, request)
        extensions = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status,
            headers=raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _aiohttp_url(url: httpx.URL) -> yarl.URL:
    """Return the URL for aiohttp: as encoded by httpx, without userinfo.

    httpx has already turned a URL's userinfo into an ``Authorization``
    header, and aiohttp raises ValueError for a request that carries both.
    Parsed again, yarl would requote the path (%7E becomes ~), so the
    receiver would see another target than the configured one.
    """
    return yarl.URL(str(url.copy_with(userinfo=b"")), encoded=True)


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    """Read at most `MAX_RESPONSE_BYTES` of the body, dropping the rest unread."""
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_RESPONSE_BYTES:
        chunk = await response.content.read(MAX_RESPONSE_BYTES + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)

    # The unread rest may never end (a chunked body), so the connection
    # cannot go back to the pool.
    response.close()
    logger.warning(
        "response body over the limit, the rest is dropped status=%d max_bytes=%d",
        response.status,
        MAX_RESPONSE_BYTES,
    )
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]


def _decoded(
    content: bytes, raw_headers: list[tuple[bytes, bytes]], request: httpx.Request
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Undo gzip and deflate codings, keeping `MAX_RESPONSE_BYTES` at most.

    The returned headers carry no ``Content-Encoding`` or ``Content-Length``,
    so httpx, which would decode without a limit, passes the body through.
    A coding other than these two leaves the body as it arrived.

    Raises:
        httpx.DecodingError: the body does not decode, as httpx raises it.
    """
    codings = [
        coding.strip().lower()
        for name, value in raw_headers
        if name.lower() == b"content-encoding"
        for coding in value.decode("latin-1").split(",")
        if coding.strip()
    ]
    if not codings:
        return content, raw_headers

    headers = [
        (name, value)
        for name, value in raw_headers
        if name.lower() not in (b"content-encoding", b"content-length")
    ]
    # RFC 9110, section 8.4: codings are listed in the order applied.
    decoded = content
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding not in ("gzip", "x-gzip", "deflate"):
            return content, headers
        try:
            decoded = _inflate(decoded, coding)
        except zlib.error as error:
            raise httpx.DecodingError(
                f"response body is not valid {coding}", request=request
            ) from error
    return decoded, headers


def _inflate(data: bytes, coding: str) -> bytes:
    if coding != "deflate":
        return _inflate_limited(data, _GZIP_WBITS)
    # As httpx does: "deflate" is meant to be zlib-framed, but some servers
    # send raw deflate.
    try:
        return _inflate_limited(data, _ZLIB_WBITS)
    except zlib.error:
        return _inflate_limited(data, _RAW_DEFLATE_WBITS)


def _inflate_limited(data: bytes, wbits: int) -> bytes:
    decompressor = zlib.decompressobj(wbits)
    decoded = decompressor.decompress(data, MAX_RESPONSE_BYTES)
    if decompressor.unconsumed_tail:
        logger.warning(
            "decoded response body over the limit, the rest is dropped max_bytes=%d",
            MAX_RESPONSE_BYTES,
        )
    return decoded


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """Map httpx's per-request timeouts onto aiohttp's.

    httpx's pool timeout bounds the wait for a free connection, which
    aiohttp's ``connect`` covers together with the connect itself. aiohttp
    has no write timeout. The bodies here fit in the socket buffer, and the
    outbox bounds each whole attempt.
    """
    timeout = request.extensions.get("timeout", {})
    connect = timeout.get("connect")
    pool = timeout.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if connect is None or pool is None else connect + pool,
        sock_connect=connect,
        sock_read=timeout.get("read"),
    )


def environment_proxies() -> list[str]:
    """Return the names of the proxy settings in the environment, if any."""
    return sorted(
        name for name in urllib.request.getproxies() if name in ("http", "https", "all")
    )


def outbound_client(timeout: float) -> httpx.AsyncClient:
    """Return the client for every outbound request of the bridge.

    Redirects are off and no cookie is stored. With a proxy in the
    environment, the client keeps httpx's own transport, which uses it.
    """
    # httpx's client keeps cookies in its own jar, whatever the transport.
    # The webhook target connects to pinned addresses, so receivers behind
    # one address would share them. This jar stores none.
    cookies = http.cookiejar.CookieJar(
        policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
    )
    proxies = environment_proxies()
    if proxies:
        # NOTE: httpx's transport reads and decodes a response body whole,
        # so behind a proxy MAX_RESPONSE_BYTES does not bound it.
        logger.info(
            "outbound requests use the proxy settings of the environment "
            "schemes=%s transport=httpx",
            ",".join(proxies),
        )
        return httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, cookies=cookies
        )
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        cookies=cookies,
        # httpx would also offer br and zstd once their packages are
        # installed, which the transport does not decode.
        headers={"Accept-Encoding": "gzip, deflate"},
        transport=AiohttpTransport(),
    )
