"""Detached JWS signatures over webhook bodies (RFC 7515 with RFC 7797).

The ``X-JWS-Signature`` header is a JWS in compact serialization with a
detached, unencoded payload:

    BASE64URL(protected header) + ".." + BASE64URL(signature)

The protected header is always the bytes
``{"alg":"HS256","b64":false,"crit":["b64"]}``. Because ``b64`` is false
(RFC 7797 section 3), the signing input is ``BASE64URL(header) + "." +
body`` with the body as raw bytes. The payload part of the compact form is
empty, because the payload travels as the HTTP body (RFC 7515 appendix F).
The signature is HMAC-SHA256 (RFC 7518 section 3.2) keyed with the shared
key decoded as base64url, which is how ``jwk.JWK(kty="oct", k=shared_key)``
decodes it on the receiving side.

The header is fixed bytes rather than a serialized dict, so that a change
of JSON library or key order can never change what receivers see.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from jwcrypto.common import base64url_decode

PROTECTED_HEADER = b'{"alg":"HS256","b64":false,"crit":["b64"]}'
SIGNATURE_HEADER = "X-JWS-Signature"


class InvalidSharedKey(ValueError):
    """The shared key is not base64url. The message never contains the key."""


def base64url(data: bytes) -> str:
    """Encode as base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


ENCODED_HEADER = base64url(PROTECTED_HEADER)


def decode_shared_key(shared_key: str) -> bytes:
    """Decode a shared key the way jwcrypto decodes a JWK's ``k`` member.

    Raises:
        InvalidSharedKey: the key is not base64url.
    """
    try:
        return base64url_decode(shared_key)
    except (ValueError, TypeError):
        raise InvalidSharedKey("the shared key is not valid base64url") from None


def sign(body: bytes, key: bytes) -> str:
    """Return the detached JWS for ``body``, the value of ``X-JWS-Signature``.

    ``key`` is the decoded shared key (`decode_shared_key`).
    """
    signing_input = ENCODED_HEADER.encode("ascii") + b"." + body
    mac = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{ENCODED_HEADER}..{base64url(mac)}"
