"""Detached JWS: the RFC 7797 vector, and the receiver check on real requests."""

from __future__ import annotations

import base64

import pytest
from fakes.events import context, make_event, run, webhook_integration
from fakes.fixtures import WEBHOOK_SHARED_KEY
from fakes.webhook_receiver import WebhookReceiver, verify_signature
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from bridge import jws as bridge_jws
from bridge.targets.webhook import WebhookTarget

# RFC 7797 section 4.2, "Example with Header Parameters": the HS256 key of
# RFC 7515 appendix A.1, payload "$.02", header with b64 false.
RFC7797_KEY = (
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZ"
    "r1Z9CAow"
)
RFC7797_PAYLOAD = b"$.02"
RFC7797_DETACHED = (
    "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19"
    "..A5dxf2s96_n5FLueVuW1Z_vh161FwXZC4YLPff6dmDY"
)


def test_protected_header_bytes_are_fixed() -> None:
    assert bridge_jws.PROTECTED_HEADER == b'{"alg":"HS256","b64":false,"crit":["b64"]}'
    assert bridge_jws.ENCODED_HEADER == (
        "eyJhbGciOiJIUzI1NiIsImI2NCI6ZmFsc2UsImNyaXQiOlsiYjY0Il19"
    )


def test_sign_reproduces_rfc7797_vector() -> None:
    key = bridge_jws.decode_shared_key(RFC7797_KEY)

    signature = bridge_jws.sign(RFC7797_PAYLOAD, key)

    assert signature == RFC7797_DETACHED


def test_receiver_check_verifies_rfc7797_vector() -> None:
    verify_signature(RFC7797_KEY, RFC7797_DETACHED, RFC7797_PAYLOAD)


def test_receiver_check_rejects_changed_body() -> None:
    with pytest.raises(JWException):
        verify_signature(RFC7797_KEY, RFC7797_DETACHED, b"$.03")


def test_decode_shared_key_rejects_bad_base64url() -> None:
    with pytest.raises(bridge_jws.InvalidSharedKey) as raised:
        bridge_jws.decode_shared_key("a" * 45)

    assert "a" * 45 not in str(raised.value)


def test_signed_request_verifies_with_documented_check(
    signed_webhook_receiver: WebhookReceiver,
) -> None:
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(
        f"{signed_webhook_receiver.url}/hook", WEBHOOK_SHARED_KEY
    )

    run(lambda client: target.send(make_event(), context(integration, client)))
    (request,) = signed_webhook_receiver.requests
    signature = request.headers["x-jws-signature"]

    # The receiver-side check from docs/formats/webhook.md, verbatim.
    key = jwk.JWK(kty="oct", k=WEBHOOK_SHARED_KEY)
    token = jws.JWS()
    token.deserialize(signature)
    token.verify(key, alg="HS256", detached_payload=request.body)

    assert signed_webhook_receiver.rejected == []
    assert len(signed_webhook_receiver.events) == 1


def test_signature_is_over_exact_body_bytes(
    signed_webhook_receiver: WebhookReceiver,
) -> None:
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(
        f"{signed_webhook_receiver.url}/hook", WEBHOOK_SHARED_KEY
    )

    run(lambda client: target.send(make_event(), context(integration, client)))
    (request,) = signed_webhook_receiver.requests
    header, empty, encoded_mac = request.headers["x-jws-signature"].split(".")
    key = bridge_jws.decode_shared_key(WEBHOOK_SHARED_KEY)
    expected = bridge_jws.sign(request.body, key)
    reserialized = request.body.replace(b",", b", ")

    assert empty == ""
    assert header == bridge_jws.ENCODED_HEADER
    assert request.headers["x-jws-signature"] == expected
    assert base64.urlsafe_b64decode(encoded_mac + "=")
    with pytest.raises(JWException):
        verify_signature(WEBHOOK_SHARED_KEY, expected, reserialized)


def test_wrong_key_fails_receiver_check(
    signed_webhook_receiver: WebhookReceiver,
) -> None:
    other_key = base64.urlsafe_b64encode(b"x" * 32).rstrip(b"=").decode()
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(f"{signed_webhook_receiver.url}/hook", other_key)

    outcome = run(
        lambda client: target.send(make_event(), context(integration, client))
    )

    assert outcome.reason == (
        "the webhook receiver answered HTTP 401: "
        "X-JWS-Signature does not verify: InvalidJWSSignature"
    )
    assert signed_webhook_receiver.events == []
