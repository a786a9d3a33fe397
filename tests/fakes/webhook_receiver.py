"""A fake ``health.webhook`` receiver on 127.0.0.1 that checks signatures.

It accepts a POST on any path, records headers and the raw body, and, when
built with a shared key, verifies ``X-JWS-Signature`` with `verify_signature`
(the receiver-side check the bridge documents, run with jwcrypto) and
responds 401 when it does not verify. Accepted events get a 200.

    receiver = WebhookReceiver(shared_key=key)
    with receiver:
        ...POST to receiver.url + "/hook"...
        receiver.fail_next(status=500)
        receiver.fail_next(status=302, headers={"Location": "http://10.0.0.1/"})
    receiver.events          # parsed bodies of accepted, verified requests
    receiver.rejected        # requests rejected with 401 or 400, with the reason
"""

from __future__ import annotations

import json
import threading
from typing import Any

from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from fakes.server import FakeServer, RecordedRequest, Response


def verify_signature(shared_key: str, signature: str, body: bytes) -> None:
    """Verify a detached, unencoded-payload JWS as docs/formats/webhook.md shows.

    Raises:
        jwcrypto.common.JWException: the signature does not verify.
        ValueError: the header value or the key is malformed.
    """
    key = jwk.JWK(kty="oct", k=shared_key)
    token = jws.JWS()
    token.deserialize(signature)
    token.verify(key, alg="HS256", detached_payload=body)


class WebhookReceiver(FakeServer):
    """Fake webhook endpoint; see the module docstring."""

    def __init__(self, shared_key: str | None = None) -> None:
        super().__init__()
        self.shared_key = shared_key
        self._events: list[dict[str, Any]] = []
        self._rejected: list[tuple[RecordedRequest, str]] = []
        self._results_lock = threading.Lock()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Parsed bodies of accepted requests, oldest first."""
        with self._results_lock:
            return list(self._events)

    @property
    def rejected(self) -> list[tuple[RecordedRequest, str]]:
        """Requests rejected with 401 or 400, each with the reason."""
        with self._results_lock:
            return list(self._rejected)

    def respond(self, request: RecordedRequest) -> Response:
        if request.method != "POST":
            return Response(405, "POST only")
        if self.shared_key is not None:
            signature = request.headers.get("x-jws-signature")
            if not signature:
                return self._reject(request, 401, "missing X-JWS-Signature")
            try:
                verify_signature(self.shared_key, signature, request.body)
            except (JWException, ValueError) as error:
                reason = f"X-JWS-Signature does not verify: {type(error).__name__}"
                return self._reject(request, 401, reason)
        try:
            event = json.loads(request.body)
        except ValueError:
            return self._reject(request, 400, "body is not JSON")
        with self._results_lock:
            self._events.append(event)
        return Response(
            200, {"received": event.get("id") if isinstance(event, dict) else None}
        )

    def _reject(self, request: RecordedRequest, status: int, reason: str) -> Response:
        with self._results_lock:
            self._rejected.append((request, reason))
        return Response(status, reason)
