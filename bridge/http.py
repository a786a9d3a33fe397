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
- The body arrives undecoded, and httpx decodes it by its
  ``Content-Encoding`` as its own transport would.

aiohttp ignores proxies unless configured to use one, and httpx does not
mount the proxies of the environment on a client with its own transport.
So when ``HTTP_PROXY``, ``HTTPS_PROXY`` or ``ALL_PROXY`` is set,
`outbound_client` keeps httpx's default transport, which honours them and
``NO_PROXY``.
"""

from __future__ import annotations

import http.cookiejar
import logging
import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import httpx
import yarl

logger = logging.getLogger(__name__)

# As httpx's defaults: connections in all, and seconds an idle one is kept.
MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0


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
    # although the receiver accepted it; docs/formats/webhook.md asks
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
            # Timeouts come with each request; see `_timeout`.
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

        with _translated(request):
            async with self._session.request(
                request.method,
                # httpx's URL is already percent-encoded. Parsed again, yarl
                # would requote it (%7E becomes ~), so the receiver would see
                # another target than the configured one.
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=_timeout(request),
            ) as response:
                content = await response.read()
                raw_headers = list(response.raw_headers)
                status = response.status
                reason = response.reason

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


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """Map httpx's per-request timeouts onto aiohttp's.

    httpx's pool timeout bounds the wait for a free connection, which
    aiohttp's ``connect`` covers together with the connect itself. aiohttp
    has no write timeout; the bodies here are small enough for the socket
    buffer, and the outbox bounds each whole attempt.
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
        transport=AiohttpTransport(),
    )
