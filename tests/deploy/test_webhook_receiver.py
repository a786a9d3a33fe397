"""The local stack's webhook receiver: a real server on a free port.

Signatures here are computed with hmac and base64 from the documented
construction, independently of the bridge's signing code, so that a
receiver and a sender that agreed on a wrong format would both fail.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import io
import json
import secrets
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
PROTECTED_HEADER = b'{"alg":"HS256","b64":false,"crit":["b64"]}'


def _load_receiver() -> ModuleType:
    path = REPO / "deploy" / "local" / "webhook_receiver.py"
    spec = importlib.util.spec_from_file_location("webhook_receiver", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


receiver_module = _load_receiver()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(shared_key: str, body: bytes) -> str:
    """Build X-JWS-Signature the documented way: header..HMAC(header.body)."""
    key = base64.urlsafe_b64decode(shared_key + "=" * (-len(shared_key) % 4))
    header = _b64url(PROTECTED_HEADER)
    mac = hmac.new(key, header.encode() + b"." + body, hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


class RunningReceiver:
    def __init__(self, url: str, output: io.StringIO, shared_key: str) -> None:
        self.url = url
        self.output = output
        self.shared_key = shared_key

    def post(self, body: bytes, signature: str | None) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["X-JWS-Signature"] = signature
        request = urllib.request.Request(
            self.url, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[RunningReceiver]:
    shared_key = _b64url(secrets.token_bytes(32))
    key_file = tmp_path / "shared-key"
    key_file.write_text(shared_key + "\n")
    output = io.StringIO()
    state = receiver_module.Receiver(
        receiver_module.load_shared_key(key_file), output=output
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver_module.make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        yield RunningReceiver(f"http://127.0.0.1:{port}/webhook", output, shared_key)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_signed_event_accepted_and_printed(receiver: RunningReceiver) -> None:
    body = json.dumps({"id": "evt-1", "event": "warning", "free_percent": "15.0"})

    status, _ = receiver.post(body.encode(), sign(receiver.shared_key, body.encode()))

    assert status == 200
    printed = receiver.output.getvalue()
    assert "signature verified" in printed
    assert "WARNING" in printed
    assert "free_percent: 15.0" in printed


def test_tampered_body_rejected(receiver: RunningReceiver) -> None:
    body = b'{"id": "evt-1", "event": "warning"}'
    signature = sign(receiver.shared_key, body)

    status, reason = receiver.post(body.replace(b"warning", b"all_clear"), signature)

    assert status == 401
    assert "does not verify" in reason
    assert receiver.output.getvalue() == ""


def test_wrong_key_rejected(receiver: RunningReceiver) -> None:
    body = b'{"id": "evt-1"}'
    other_key = _b64url(secrets.token_bytes(32))

    status, _ = receiver.post(body, sign(other_key, body))

    assert status == 401


def test_missing_signature_rejected(receiver: RunningReceiver) -> None:
    status, reason = receiver.post(b'{"id": "evt-1"}', None)

    assert status == 401
    assert "missing X-JWS-Signature" in reason


def test_other_algorithm_rejected(receiver: RunningReceiver) -> None:
    # A header naming "none" must not bypass the HS256 check.
    header = _b64url(b'{"alg":"none","b64":false,"crit":["b64"]}')

    status, _ = receiver.post(b'{"id": "evt-1"}', f"{header}..")

    assert status == 401


def test_signed_non_json_rejected(receiver: RunningReceiver) -> None:
    body = b"not json"

    status, _ = receiver.post(body, sign(receiver.shared_key, body))

    assert status == 400


def test_redelivery_marked(receiver: RunningReceiver) -> None:
    body = b'{"id": "evt-7", "event": "critical"}'
    signature = sign(receiver.shared_key, body)

    first, _ = receiver.post(body, signature)
    second, _ = receiver.post(body, signature)

    assert first == 200
    assert second == 200
    assert receiver.output.getvalue().count("redelivery") == 1


def test_empty_key_file_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("")

    with pytest.raises(ValueError, match="is empty"):
        receiver_module.load_shared_key(key_file)


def test_short_key_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(_b64url(secrets.token_bytes(16)))

    with pytest.raises(ValueError, match="decodes to 16 bytes"):
        receiver_module.load_shared_key(key_file)


def test_event_printed_with_disk_labels() -> None:
    payload = {
        "type": "warning",
        "summary": "Low disk space",
        "disk": {
            "id": "0a27",
            "service": "db",
            "labels": {"service": "db", "mountpoint": "/var/lib/mysql"},
        },
        "level": "warning",
    }

    lines = receiver_module.describe_event(payload).splitlines()

    assert lines[0] == "WARNING: Low disk space"
    # The label set alone, sorted, so that a reader can match one disk.
    assert lines[1] == "  disk: mountpoint=/var/lib/mysql, service=db"
    assert "  level: warning" in lines
