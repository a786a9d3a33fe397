"""A real HTTP server on 127.0.0.1 that tests can script, base of every fake.

Each fake is a `FakeServer` subclass that implements ``respond`` the way
the real API does. The base class runs a threaded ``http.server`` on an
ephemeral loopback port, records every request (method, path, headers and
raw body), and lets a test replace the next responses:

    fake.fail_next(2, status=503)           # two 503s, then normal again
    fake.fail_next(status=429, headers={"Retry-After": "7"})
    fake.delay_next(seconds=5)              # respond to the next request late

Use it as a context manager or call ``start``/``stop``; the fixtures in
``fakes.fixtures`` do that for you.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# Bigger bodies get a 413 and are not recorded. Far above any event.
MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    """A fake's response. ``delay`` is the seconds to wait before sending it."""

    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


class FakeServer:
    """Base of the fakes: a scripted, recording HTTP server on 127.0.0.1."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._scripted: deque[Response] = deque()
        self._delays: deque[float] = deque()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Subclasses implement the API here.
    def respond(self, request: RecordedRequest) -> Response:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Base URL, such as ``http://127.0.0.1:41234`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("the fake server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._lock:
            return list(self._requests)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        body: bytes | dict[str, Any] | str = b"",
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``count`` requests with this response instead."""
        with self._lock:
            for _ in range(count):
                self._scripted.append(
                    Response(status, body, dict(headers or {}), delay)
                )

    def delay_next(self, count: int = 1, *, seconds: float) -> None:
        """Answer the next ``count`` requests normally, but ``seconds`` late."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def reset(self) -> None:
        """Forget recorded requests and scripted responses."""
        with self._lock:
            self._requests.clear()
            self._scripted.clear()
            self._delays.clear()

    def start(self) -> Self:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # stop() must not wait for a delayed response still sleeping.
        self._server.block_on_close = False
        self._released.clear()
        self._thread = threading.Thread(
            # A short poll interval makes stop() quick: shutdown() waits
            # for the loop to notice it.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"{type(self).__name__}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _handle(self, request: RecordedRequest) -> Response:
        with self._lock:
            self._requests.append(request)
            scripted = self._scripted.popleft() if self._scripted else None
            delay = self._delays.popleft() if self._delays else 0.0
        response = scripted if scripted is not None else self.respond(request)
        wait = max(delay, response.delay)
        if wait:
            # Interrupted by stop(), so a slow response never outlives a test.
            self._released.wait(wait)
        return response


def _make_handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(Response(413, "body too large"))
                return
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            request = RecordedRequest(self.command, self.path, headers, body)
            self._send(fake._handle(request))

        def _send(self, response: Response) -> None:
            data, content_type = response.encoded()
            if response.status in (204, 304):
                # RFC 9110 sections 15.3.5 and 15.4.5: no content; bytes
                # after the header would be read as the next response.
                data = b""
            try:
                self.send_response(response.status)
                headers = {"Content-Type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (a timeout test), so there is no one to respond to.
                pass

        def log_message(self, format: str, *args: Any) -> None:
            # Quiet: tests assert on recorded requests, not on a log.
            pass

    return Handler
