"""A scriptable HTTP server on 127.0.0.1 that misbehaves on purpose.

The fakes in ``tests/fakes`` speak each target's API; this server breaks
HTTP itself: it resets the connection half way through a body, never
answers, answers late, or speaks TLS with a certificate that does not
verify. Each request takes the next behaviour of the script, and the
default one once the script is used up, so a test can say "fail twice,
then recover":

    server = FaultServer([Answer(503), ResetMidBody()])
    with server:
        ...point a webhook integration at server.url + "/hook"...
    server.arrivals        # monotonic time of each request, oldest first
    server.max_concurrent  # most requests it held at once

Every connection is closed after one response, so each delivery attempt
is one connection.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Answer:
    """A complete response, sent ``delay`` seconds after the request."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class ResetMidBody:
    """Headers promising 1,000 bytes, a few of them, then a TCP reset."""


@dataclass(frozen=True)
class Hang:
    """Read the request and never answer, until the server stops."""


Behaviour = Answer | ResetMidBody | Hang
REASONS = {200: "OK", 202: "Accepted", 429: "Too Many Requests"}


@dataclass(frozen=True)
class Arrival:
    """One request as the server read it."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


class FaultServer:
    """See the module docstring."""

    def __init__(
        self,
        script: Iterable[Behaviour] = (),
        *,
        default: Behaviour | None = None,
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._script = deque(script)
        self.default = default or Answer()
        self._port = port
        self._tls = tls
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._arrivals: list[Arrival] = []
        self._active = 0
        self.max_concurrent = 0
        self.handshake_failures = 0
        self._server: socketserver.ThreadingTCPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the fault server is not started"
        scheme = "https" if self._tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    def recover(self, behaviour: Behaviour | None = None) -> None:
        """Drop what is left of the script; answer with ``behaviour`` from now on."""
        with self._lock:
            self._script.clear()
            self.default = behaviour or Answer()

    def start(self) -> Self:
        owner = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                owner._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fault-server",
            daemon=True,
        ).start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, connection: socket.socket) -> None:
        if self._tls is not None:
            try:
                connection = self._tls.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):
                with self._lock:
                    self.handshake_failures += 1
                return
        try:
            arrival = _read_request(connection)
        except (OSError, ValueError):
            return
        with self._lock:
            self._arrivals.append(arrival)
            behaviour = self._script.popleft() if self._script else self.default
            self._active += 1
            self.max_concurrent = max(self.max_concurrent, self._active)
        try:
            self._behave(connection, behaviour)
        except OSError:
            pass  # The client gave up first, as a timed-out attempt does.
        finally:
            with self._lock:
                self._active -= 1
            connection.close()

    def _behave(self, connection: socket.socket, behaviour: Behaviour) -> None:
        if isinstance(behaviour, Hang):
            self._released.wait()
            return
        if isinstance(behaviour, ResetMidBody):
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"partial": "'
            )
            # SO_LINGER with a zero timeout makes close() send a RST.
            connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            return
        if behaviour.delay and self._released.wait(behaviour.delay):
            return
        reason = REASONS.get(behaviour.status, "Status")
        head = [f"HTTP/1.1 {behaviour.status} {reason}"]
        headers = {
            "Content-Type": "application/json",
            "Content-Length": str(len(behaviour.body)),
            "Connection": "close",
            **behaviour.headers,
        }
        head.extend(f"{name}: {value}" for name, value in headers.items())
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + behaviour.body)


def _read_request(connection: socket.socket) -> Arrival:
    reader = connection.makefile("rb")
    request_line = reader.readline(65536).decode("latin-1")
    if not request_line:
        raise ValueError("connection closed before a request")
    at = time.monotonic()
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(65536).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = reader.read(int(headers.get("content-length", "0")))
    path = request_line.split(" ")[1] if " " in request_line else ""
    return Arrival(at=at, path=path, headers=headers, body=body)


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """Make a self-signed certificate for 127.0.0.1 and a server context with it.

    Returns:
        The server's TLS context, and the certificate's PEM file, which a
        client can trust explicitly to show that the server itself works.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "server.pem"
    key_path = directory / "server.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
