"""Shape validation of integrations, before they are stored or used.

`validate_integration` checks what can be checked without sending a
notification: required fields, token and key formats, and that a webhook
URL is http(s) and does not target an internal address. The live check,
which does send, is each target's ``check`` method.

A `Problem` names the field and the fix; it never contains a secret value,
only facts about it (its length, its prefix being wrong).
"""

from __future__ import annotations

import base64
import re
import secrets

import httpx
from jwcrypto import jwk
from jwcrypto.common import JWException, base64url_decode

from bridge import netguard
from bridge.integrations import PAGERDUTY, REQUIRED_FIELDS, SLACK, TYPES, Integration
from bridge.targets.base import Problem

# jwcrypto 1.5.7 and later reject HS256 keys shorter than the hash output
# (RFC 7518 section 3.2 requires a key of at least 256 bits).
MIN_SHARED_KEY_BYTES = 32
SHARED_KEY_ADVICE = (
    "generate one with `webpaas key:generate`, or with python3 -c 'import "
    "secrets,base64;print(base64.urlsafe_b64encode(secrets.token_bytes(32))"
    '.rstrip(b"=").decode())\''
)

# Slack bot tokens start with xoxb-, user tokens with xoxp-.
_SLACK_TOKEN = re.compile(r"xox[bp]-[A-Za-z0-9-]+")
# Slack channel ids: C for public channels, G for private channels and
# multi-person direct messages, then upper-case letters and digits.
_SLACK_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{8,}")
# Slack channel names are at most 80 characters of lower-case letters,
# digits, hyphens and underscores.
_MAX_CHANNEL_NAME = 80
# PagerDuty Events API v2 ("Send an Alert Event"): the routing key is the
# 32-character Integration Key of an integration.
_ROUTING_KEY_LENGTH = 32
_ROUTING_KEY = re.compile(r"[A-Za-z0-9]{32}")
# A DNS label (RFC 1123 section 2.1), with "_" as some zones use it. IDN
# hosts are checked in their xn-- form.
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")
_MAX_HOST_NAME = 253


def generate_shared_key() -> str:
    """Return a new random shared key: 32 bytes as unpadded base64url."""
    raw = secrets.token_bytes(MIN_SHARED_KEY_BYTES)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


async def validate_integration(
    integration: Integration,
    *,
    allow_private_targets: bool,
    resolver: netguard.Resolver = netguard.system_resolver,
) -> list[Problem]:
    """Check an integration's fields; an empty list means it looks valid.

    Args:
        integration: the integration to check, secrets included.
        allow_private_targets: accept webhook URLs that target loopback,
            private and other internal addresses (tests, local use).
        resolver: resolves webhook host names; tests pass a fake one.
    """
    if integration.type not in TYPES:
        return [
            Problem("type", f"unknown type {integration.type!r}; use one of {TYPES}")
        ]

    fields = {**integration.settings, **integration.secrets}
    missing = [
        Problem(name, "is required")
        for name in REQUIRED_FIELDS[integration.type]
        if not fields.get(name)
    ]
    if missing:
        return missing

    if integration.type == SLACK:
        return _slack_problems(fields)
    if integration.type == PAGERDUTY:
        return _pagerduty_problems(fields)
    return await _webhook_problems(fields, allow_private_targets, resolver)


def _slack_problems(fields: dict[str, str]) -> list[Problem]:
    problems = []
    if not _SLACK_TOKEN.fullmatch(fields["token"]):
        problems.append(
            Problem(
                "token",
                "must be a Slack bot token (xoxb-...) or user token (xoxp-...) "
                "without spaces",
            )
        )
    channel = fields["channel"]
    if not (_is_channel_name(channel) or _SLACK_CHANNEL_ID.fullmatch(channel)):
        problems.append(
            Problem(
                "channel",
                f"{channel!r} is neither #name (lower-case letters, digits, - "
                f"and _, at most {_MAX_CHANNEL_NAME}) nor a channel id "
                "such as C0123456789",
            )
        )
    return problems


def _is_channel_name(channel: str) -> bool:
    name = channel.removeprefix("#")
    if name == channel or not 1 <= len(name) <= _MAX_CHANNEL_NAME:
        return False
    return all(
        char in "-_" or char.isdigit() or (char.isalpha() and not char.isupper())
        for char in name
    )


def _pagerduty_problems(fields: dict[str, str]) -> list[Problem]:
    key = fields["routing_key"]
    if len(key) != _ROUTING_KEY_LENGTH:
        return [
            Problem(
                "routing_key",
                f"must be {_ROUTING_KEY_LENGTH} characters, got {len(key)}; copy "
                "the Integration Key of an Events API v2 integration",
            )
        ]
    if not _ROUTING_KEY.fullmatch(key):
        return [Problem("routing_key", "must contain only letters and digits")]
    return []


async def _webhook_problems(
    fields: dict[str, str], allow_private: bool, resolver: netguard.Resolver
) -> list[Problem]:
    problems = []
    shape_problem = _url_shape_problem(fields["url"])
    if shape_problem is not None:
        problems.append(shape_problem)
    else:
        try:
            await netguard.check_url(
                fields["url"], allow_private=allow_private, resolver=resolver
            )
        except netguard.ResolutionFailed:
            # Not a shape problem: DNS may be down right now, and every
            # delivery checks the resolved addresses again before it connects.
            pass
        except netguard.UnsafeTarget as error:
            problems.append(Problem("url", str(error)))

    shared_key = fields.get("shared_key")
    if shared_key:
        problem = shared_key_problem(shared_key)
        if problem is not None:
            problems.append(problem)
    return problems


def _url_shape_problem(url: str) -> Problem | None:
    """Reject URLs that netguard parses but no delivery could use.

    A host that is not an IP address or a DNS name (spaces, percent
    escapes) never resolves, and a port outside 1 to 65535 never connects.
    A user or password in the URL would be shown in clear by every read,
    because only the secret fields are write-only.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        # netguard names the address behind spellings that httpx rejects.
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    if parsed.userinfo:
        return Problem(
            "url",
            "must not contain a user or password, because the URL is shown in "
            "clear; sign events with a shared key instead",
        )
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return Problem("url", f"has port {parsed.port}; use a port from 1 to 65535")
    host = parsed.raw_host.decode("ascii").lower()
    if netguard.parse_host_address(host) is None and not _is_host_name(host):
        return Problem(
            "url",
            f"host {parsed.host!r} is neither an IP address nor a valid DNS name",
        )
    return None


def _is_host_name(host: str) -> bool:
    name = host.removesuffix(".")
    if not 1 <= len(name) <= _MAX_HOST_NAME:
        return False
    return all(_HOST_LABEL.fullmatch(label) for label in name.split("."))


def shared_key_problem(shared_key: str) -> Problem | None:
    """Check a shared key the way the receiver-side jwcrypto check decodes it.

    Receivers build their key with ``jwk.JWK(kty="oct", k=shared_key)``,
    which decodes ``k`` as base64url, and the bridge signs with the same
    bytes.
    """
    try:
        key = jwk.JWK(kty="oct", k=shared_key)
        raw = base64url_decode(key["k"])
    except (JWException, ValueError, TypeError):
        return Problem("shared_key", f"is not valid base64url; {SHARED_KEY_ADVICE}")
    if len(raw) < MIN_SHARED_KEY_BYTES:
        return Problem(
            "shared_key",
            f"decodes to {len(raw)} bytes, fewer than the {MIN_SHARED_KEY_BYTES} "
            f"that HS256 needs; {SHARED_KEY_ADVICE}",
        )
    return None
