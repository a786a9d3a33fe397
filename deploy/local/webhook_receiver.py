"""A webhook receiver for the local stack: verify each signature, print each event.

The bridge signs every ``health.webhook`` delivery with a detached JWS
(RFC 7515 appendix F, unencoded payload per RFC 7797) in the
``X-JWS-Signature`` header, keyed with the integration's shared key. This
receiver checks that signature the way the documentation tells receivers
to, answers 401 when it does not verify, and prints one block per verified
notification on standard output. It is a demonstration and a smoke test,
not a production endpoint: it keeps nothing and serves one process.

Run it with the project's virtual environment::

    .venv/bin/python deploy/local/webhook_receiver.py \\
        --listen 127.0.0.1:9848 --shared-key-file /path/to/webhook-shared-key
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jwcrypto import jwk, jws
from jwcrypto.common import JWException, base64url_decode

logger = logging.getLogger("webpaas.webhook_receiver")

SIGNATURE_HEADER = "X-JWS-Signature"
WEBHOOK_PATH = "/webhook"
# Bodies are one event each; anything far larger is not from the bridge.
MAX_BODY_BYTES = 1024 * 1024
# jwcrypto 1.5.7 and later reject shorter HS256 keys when verifying.
MIN_KEY_BYTES = 32
# Event ids remembered to spot redeliveries; older ones are forgotten.
REMEMBERED_EVENT_IDS = 10_000


class SignatureError(Exception):
    """The X-JWS-Signature header is missing, malformed or does not verify."""


def load_shared_key(path: Path) -> jwk.JWK:
    """Read a base64url shared key from ``path`` and wrap it as an HS256 key.

    Raises:
        ValueError: the file is empty or the key is not valid base64url of at
            least 32 bytes, which jwcrypto 1.5.7 and later require for HS256.
    """
    shared_key = path.read_text(encoding="ascii").strip()
    if not shared_key:
        raise ValueError(f"shared key file {path} is empty")
    try:
        key = jwk.JWK(kty="oct", k=shared_key)
        size = len(base64url_decode(shared_key))
    except (JWException, ValueError) as error:
        raise ValueError(
            f"shared key in {path} is not valid base64url; "
            "generate one with `webpaas key:generate`"
        ) from error
    if size < MIN_KEY_BYTES:
        raise ValueError(
            f"shared key in {path} decodes to {size} bytes; HS256 needs at least "
            f"{MIN_KEY_BYTES}; generate one with `webpaas key:generate`"
        )
    return key


def verify_signature(key: jwk.JWK, signature: str | None, body: bytes) -> None:
    """Verify a detached, unencoded-payload JWS over the raw request body.

    This is the receiver-side check the bridge documents: deserialize the
    compact JWS from the header and verify it with the body as the detached
    payload. ``alg`` is pinned to HS256 so that a header cannot pick another
    algorithm.

    Raises:
        SignatureError: the header is missing or the signature does not verify.
    """
    if not signature:
        raise SignatureError(f"missing {SIGNATURE_HEADER} header")
    token = jws.JWS()
    try:
        token.deserialize(signature)
        token.verify(key, alg="HS256", detached_payload=body)
    except (JWException, ValueError) as error:
        raise SignatureError(f"{SIGNATURE_HEADER} does not verify") from error


def _first(payload: dict[str, Any], *names: str) -> Any:
    for name in names:
        if payload.get(name) not in (None, ""):
            return payload[name]
    return None


def describe_event(payload: Any) -> str:
    """Format one notification as a short block of text for the terminal."""
    if not isinstance(payload, dict):
        return json.dumps(payload, ensure_ascii=False)

    event_type = _first(payload, "event", "type", "event_type") or "notification"
    lines = [f"{str(event_type).upper()}: {_first(payload, 'summary') or ''}".rstrip()]
    disk = _first(payload, "disk", "labels")
    if isinstance(disk, dict):
        # The disk's full label set identifies it; the other keys of ``disk``
        # repeat some of those labels.
        labels = disk.get("labels") if isinstance(disk.get("labels"), dict) else disk
        text = ", ".join(f"{name}={value}" for name, value in sorted(labels.items()))
        lines.append(f"  disk: {text}")
    for name in ("free_percent", "level", "previous_level", "id", "occurred_at"):
        value = payload.get(name)
        if value is not None:
            lines.append(f"  {name}: {value}")
    lines.append("  body: " + json.dumps(payload, ensure_ascii=False, sort_keys=True))
    return "\n".join(lines)


class Receiver:
    """The receiver's state: the verification key and the event ids seen."""

    def __init__(self, key: jwk.JWK, output: Any = sys.stdout) -> None:
        self.key = key
        self.output = output
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def handle(self, signature: str | None, body: bytes) -> tuple[int, str]:
        """Verify and print one delivery; return the HTTP status and a reason."""
        try:
            verify_signature(self.key, signature, body)
        except SignatureError as error:
            logger.warning("rejected delivery: %s", error)
            return HTTPStatus.UNAUTHORIZED, str(error)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            logger.warning("rejected delivery: body is not JSON")
            return HTTPStatus.BAD_REQUEST, "body is not JSON"

        event_id = payload.get("id") if isinstance(payload, dict) else None
        with self._lock:
            duplicate = self._remember(event_id)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            note = " (redelivery of an event already printed)" if duplicate else ""
            print(f"[{stamp}] signature verified{note}", file=self.output)
            print(describe_event(payload), file=self.output, flush=True)
        return HTTPStatus.OK, "ok"

    def _remember(self, event_id: Any) -> bool:
        if not isinstance(event_id, str):
            return False
        if event_id in self._seen:
            return True
        self._seen[event_id] = None
        if len(self._seen) > REMEMBERED_EVENT_IDS:
            self._seen.popitem(last=False)
        return False


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    """Build the request handler class bound to ``receiver``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "webpaas-webhook-receiver"

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(HTTPStatus.OK, "ok")
            else:
                self._reply(HTTPStatus.NOT_FOUND, "not found")

        def do_POST(self) -> None:
            if self.path != WEBHOOK_PATH:
                self._reply(HTTPStatus.NOT_FOUND, f"POST to {WEBHOOK_PATH}")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
                return
            body = self.rfile.read(length)
            status, reason = receiver.handle(self.headers.get(SIGNATURE_HEADER), body)
            self._reply(status, reason)

        def _reply(self, status: int, reason: str) -> None:
            data = (reason + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    return Handler


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT``; raise argparse's error on anything else."""
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--listen {value!r} is not HOST:PORT")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--listen",
        type=parse_listen,
        default=("127.0.0.1", 9848),
        help="HOST:PORT to listen on (default 127.0.0.1:9848)",
    )
    parser.add_argument(
        "--shared-key-file",
        type=Path,
        required=True,
        help="file that contains the integration's base64url shared key",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )

    try:
        key = load_shared_key(args.shared_key_file)
    except (OSError, ValueError) as error:
        print(f"webhook_receiver: {error}", file=sys.stderr)
        return 2

    # SIGTERM, as stack.sh sends it, ends the server the same way Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    host, port = args.listen
    server = ThreadingHTTPServer((host, port), make_handler(Receiver(key)))
    logger.info("listening on http://%s:%d%s", host, port, WEBHOOK_PATH)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
