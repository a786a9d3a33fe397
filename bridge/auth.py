"""Credential checks for inbound requests: Alertmanager's and the admin's.

Alertmanager authenticates with a bearer token or HTTP basic auth, as its
``http_config`` sends them (``authorization`` or ``basic_auth``). The admin
API takes a bearer token of its own, and the Alertmanager credential never
passes as admin. Every comparison runs `hmac.compare_digest` on SHA-256
digests of both values, so the time taken reveals neither how much of a
guess was right nor the length of the expected value.

A missing credential is answered 401 with ``WWW-Authenticate``, a wrong one
403. Messages never quote what the client sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING

from starlette.exceptions import HTTPException
from starlette.requests import Request

if TYPE_CHECKING:
    from bridge.config import Settings

_REALM = 'Bearer realm="webpaas-bridge"'


def _same(presented: str, expected: str) -> bool:
    # compare_digest returns early when the lengths differ, so both sides are
    # hashed to 32 bytes first.
    return hmac.compare_digest(
        hashlib.sha256(presented.encode()).digest(),
        hashlib.sha256(expected.encode()).digest(),
    )


def _split_authorization(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    return scheme.lower(), credentials.strip()


def _basic_pair(credentials: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": _REALM})


def check_alertmanager(request: Request, settings: Settings) -> None:
    """Accept the request only with the configured Alertmanager credential.

    Raises:
        HTTPException: 401 without a credential, 403 with a wrong one.
    """
    if settings.insecure_no_auth and not settings.has_inbound_credentials:
        return

    authorization = _split_authorization(request)
    if authorization is None:
        raise _unauthorized(
            "missing credential: send the bridge token as a bearer token or basic auth"
        )
    scheme, credentials = authorization

    accepted = False
    if scheme == "bearer" and settings.bridge_token:
        accepted = _same(credentials, settings.bridge_token)
    elif scheme == "basic" and settings.bridge_username and settings.bridge_password:
        pair = _basic_pair(credentials) or ("", "")
        # Both comparisons run, so timing does not tell which part was wrong.
        user_ok = _same(pair[0], settings.bridge_username)
        password_ok = _same(pair[1], settings.bridge_password)
        accepted = user_ok and password_ok
    if not accepted:
        raise HTTPException(403, "invalid credential")


def require_admin(request: Request) -> None:
    """Accept the request only with the admin bearer token.

    Reads the settings from ``request.app.state.settings``. Without an admin
    token configured the admin API is disabled and every request gets 403.

    Raises:
        HTTPException: 401 without a bearer token, 403 with a wrong one or
            when no admin token is configured.
    """
    settings: Settings = request.app.state.settings
    authorization = _split_authorization(request)
    if authorization is None or authorization[0] != "bearer" or not authorization[1]:
        raise _unauthorized(
            "missing credential: send the admin token as a bearer token"
        )
    if not settings.admin_token:
        raise HTTPException(
            403,
            "the admin API is disabled: no admin token is configured; "
            "set WEBPAAS_ADMIN_TOKEN",
        )
    if not _same(authorization[1], settings.admin_token):
        raise HTTPException(403, "invalid credential")
