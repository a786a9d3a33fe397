"""Shape validation of integrations: one table per integration type."""

from __future__ import annotations

import asyncio
import base64

import pytest
from jwcrypto import jwk, jws

from bridge.integrations import PAGERDUTY, SLACK, WEBHOOK, Integration
from bridge.targets.base import Problem
from bridge.validation import (
    MIN_SHARED_KEY_BYTES,
    generate_shared_key,
    validate_integration,
)

GOOD_KEY = base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode()


async def fake_resolver(host: str, port: int) -> list[str]:
    answers = {
        "hooks.example.com": ["93.184.215.14"],
        "intra.example.com": ["10.0.0.5"],
    }
    if host not in answers:
        raise OSError(f"no address for {host}")
    return answers[host]


def problems(
    type_: str,
    settings: dict[str, str],
    secrets: dict[str, str],
    allow_private: bool = False,
) -> list[Problem]:
    integration = Integration(id="i-1", type=type_, settings=settings, secrets=secrets)
    return asyncio.run(
        validate_integration(
            integration, allow_private_targets=allow_private, resolver=fake_resolver
        )
    )


def fields(found: list[Problem]) -> list[str]:
    return [problem.field for problem in found]


@pytest.mark.parametrize(
    ("token", "channel", "expected"),
    [
        ("xoxb-123-456-abc", "#alerts", []),  # bot token, channel name
        ("xoxp-123-456-abc", "C0123456789", []),  # user token, public channel id
        ("xoxb-1-a", "G0123ABCDE", []),  # private channel id
        ("xoxb-1-a", "#ops_disk-alerts-2", []),  # - and _ and digits
        ("xoxb-1-a", "#équipe", []),  # lower-case non-ASCII letters
        ("xoxa-1-a", "#alerts", ["token"]),  # app-level token prefix
        ("xoxb-", "#alerts", ["token"]),  # prefix only
        ("xoxb-1 a", "#alerts", ["token"]),  # whitespace inside
        ("Bearer xoxb-1-a", "#alerts", ["token"]),  # header value pasted
        ("xoxb-1-a", "alerts", ["channel"]),  # name without #
        ("xoxb-1-a", "#Alerts", ["channel"]),  # upper case
        ("xoxb-1-a", "#has space", ["channel"]),  # space
        ("xoxb-1-a", "#a.b", ["channel"]),  # period
        ("xoxb-1-a", "#" + "a" * 81, ["channel"]),  # over 80 characters
        ("xoxb-1-a", "#", ["channel"]),  # empty name
        ("xoxb-1-a", "c0123456789", ["channel"]),  # id in lower case
        ("xoxb-1-a", "D0123456789", ["channel"]),  # a direct message id
        ("nope", "nope", ["token", "channel"]),  # both wrong
    ],
)
def test_slack_shapes(token: str, channel: str, expected: list[str]) -> None:
    found = problems(SLACK, {"channel": channel}, {"token": token})

    assert fields(found) == expected


@pytest.mark.parametrize(
    ("routing_key", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", []),  # 32 hex characters
        ("R0123456789ABCDEFGHIJKLMNOPQRSTU", []),  # 32 letters and digits
        ("0123456789abcdef0123456789abcde", ["routing_key"]),  # 31
        ("0123456789abcdef0123456789abcdef0", ["routing_key"]),  # 33
        ("0123456789abcdef0123456789abcd-f", ["routing_key"]),  # punctuation
        (" 123456789abcdef0123456789abcdef", ["routing_key"]),  # whitespace
    ],
)
def test_pagerduty_shapes(routing_key: str, expected: list[str]) -> None:
    found = problems(PAGERDUTY, {}, {"routing_key": routing_key})

    assert fields(found) == expected


@pytest.mark.parametrize(
    ("url", "shared_key", "allow_private", "expected"),
    [
        ("https://hooks.example.com/h", None, False, []),  # public, unsigned
        ("https://hooks.example.com/h", GOOD_KEY, False, []),  # public, signed
        ("http://hooks.example.com:8080/h", None, False, []),  # http and a port
        ("https://unresolvable.example.com/h", None, False, []),  # checked at send
        ("ftp://hooks.example.com/h", None, False, ["url"]),  # scheme
        ("https:///h", None, False, ["url"]),  # no host
        ("not a url", None, False, ["url"]),  # not a URL
        ("http://127.0.0.1:9/h", None, False, ["url"]),  # loopback
        ("http://intra.example.com/h", None, False, ["url"]),  # resolves to 10/8
        ("http://169.254.169.254/", None, False, ["url"]),  # metadata
        ("http://127.0.0.1:9/h", None, True, []),  # allowed for tests
        ("http://intra.example.com/h", None, True, []),  # allowed for tests
        ("https://hooks.example.com/h", "c2hvcnQ", False, ["shared_key"]),  # 5 bytes
        ("https://hooks.example.com/h", "a" * 42, False, ["shared_key"]),  # 31 bytes
        ("https://hooks.example.com/h", "a" * 43, False, []),  # exactly 32 bytes
        ("https://hooks.example.com/h", "a" * 45, False, ["shared_key"]),  # not b64
        ("http://10.0.0.1/", "short", False, ["url", "shared_key"]),  # both
    ],
)
def test_webhook_shapes(
    url: str, shared_key: str | None, allow_private: bool, expected: list[str]
) -> None:
    secrets = {"shared_key": shared_key} if shared_key else {}

    found = problems(WEBHOOK, {"url": url}, secrets, allow_private)

    assert fields(found) == expected


def test_standard_base64_key_accepted_as_jwcrypto_decodes_it() -> None:
    # `openssl rand -base64 32` output: 44 characters with + / and =.
    key = base64.b64encode(b"\xfb\xff" * 16).decode()

    found = problems(
        WEBHOOK, {"url": "https://hooks.example.com/h"}, {"shared_key": key}
    )

    assert found == []


@pytest.mark.parametrize(
    ("type_", "settings", "secrets", "expected"),
    [
        (SLACK, {}, {"token": "xoxb-1-a"}, ["channel"]),
        (SLACK, {"channel": "#a"}, {}, ["token"]),
        (PAGERDUTY, {}, {}, ["routing_key"]),
        (WEBHOOK, {}, {}, ["url"]),
        (WEBHOOK, {"url": ""}, {}, ["url"]),
        ("health.email", {}, {}, ["type"]),
    ],
)
def test_missing_fields_and_unknown_type(
    type_: str, settings: dict[str, str], secrets: dict[str, str], expected: list[str]
) -> None:
    found = problems(type_, settings, secrets)

    assert fields(found) == expected


def test_shared_key_problem_explains_fix_without_key() -> None:
    key = "c2hvcnQta2V5"

    found = problems(
        WEBHOOK, {"url": "https://hooks.example.com/h"}, {"shared_key": key}
    )

    assert len(found) == 1
    assert key not in found[0].reason
    assert "webpaas key:generate" in found[0].reason
    assert "token_bytes(32)" in found[0].reason


@pytest.mark.parametrize(
    ("type_", "settings", "secrets"),
    [
        (SLACK, {"channel": "#alerts"}, {"token": "not-a-token-s3cr3t"}),
        (PAGERDUTY, {}, {"routing_key": "s3cr3t-routing-key"}),
        (WEBHOOK, {"url": "https://hooks.example.com/"}, {"shared_key": "s3cr3t"}),
    ],
)
def test_problems_never_contain_secret(
    type_: str, settings: dict[str, str], secrets: dict[str, str]
) -> None:
    found = problems(type_, settings, secrets)

    assert found
    for problem in found:
        assert "s3cr3t" not in str(problem)


def test_generated_key_passes_and_signs_with_jwcrypto() -> None:
    key = generate_shared_key()

    found = problems(
        WEBHOOK, {"url": "https://hooks.example.com/h"}, {"shared_key": key}
    )
    token = jws.JWS(b"payload")
    token.add_signature(jwk.JWK(kty="oct", k=key), None, {"alg": "HS256"})

    assert found == []
    assert len(base64.urlsafe_b64decode(key + "=")) == MIN_SHARED_KEY_BYTES
    assert generate_shared_key() != key
