"""Tests of format rules that the admin API enforces on create and update.

The resolver is a fake, so no name is ever looked up and no address that a
case names is ever contacted.
"""

from __future__ import annotations

import asyncio
import hmac

import pytest

from bridge import auth
from bridge.integrations import WEBHOOK, Integration
from bridge.validation import validate_integration


async def public_resolver(host: str, port: int) -> list[str]:
    # A globally routable address (example.com's); nothing here connects.
    return ["93.184.215.14"]


def webhook_reasons(url: str, allow_private: bool = False) -> list[str]:
    integration = Integration(id="i-1", type=WEBHOOK, settings={"url": url})
    problems = asyncio.run(
        validate_integration(
            integration,
            allow_private_targets=allow_private,
            resolver=public_resolver,
        )
    )
    assert all(problem.field == "url" for problem in problems)
    return [problem.reason for problem in problems]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # A space in the host can never resolve; httpx escapes it as %20.
        (
            "http://exa mple.com/hook",
            "host 'exa%20mple.com' is neither an IP address nor a valid DNS name",
        ),
        # A percent-escaped address is no address to the resolver.
        (
            "http://%31%32%37.0.0.1/",
            "host '%31%32%37.0.0.1' is neither an IP address nor a valid DNS name",
        ),
        ("http://a..b/", "host 'a..b' is neither an IP address nor a valid DNS name"),
        (
            "http://-hooks.example.com/",
            "host '-hooks.example.com' is neither an IP address nor a valid DNS name",
        ),
        (
            "http://hooks.example.com:99999/",
            "has port 99999; use a port from 1 to 65535",
        ),
        ("http://hooks.example.com:0/", "has port 0; use a port from 1 to 65535"),
        (
            "https://user:password@hooks.example.com/",
            "must not contain a user or password, because the URL is shown in "
            "clear; sign events with a shared key instead",
        ),
        (
            "https://:password@hooks.example.com/",
            "must not contain a user or password, because the URL is shown in "
            "clear; sign events with a shared key instead",
        ),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_unusable_webhook_url_rejected(
    url: str, reason: str, allow_private: bool
) -> None:
    assert webhook_reasons(url, allow_private) == [reason]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/disk",
        "https://hooks.example.com.:8443/disk?team=ops",
        "http://under_score.example.com/",
        # An IDN host is checked in its xn-- form.
        "https://bücher.example/hook",
        "http://93.184.215.14:8080/",
    ],
)
def test_usable_webhook_url_accepted(url: str) -> None:
    assert webhook_reasons(url) == []


def test_octal_loopback_allowed_when_private_targets_are() -> None:
    # httpx cannot parse 0177.0.0.1, so the reason must not blame the address
    # when private targets are allowed.
    assert webhook_reasons("http://0177.0.0.1/", allow_private=False) == [
        "host '0177.0.0.1' is 127.0.0.1, a loopback address; "
        "webhooks may only target public addresses"
    ]
    assert webhook_reasons("http://0177.0.0.1/", allow_private=True) == [
        "is not a valid URL"
    ]


def test_credential_compare_hides_length(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[int, int]] = []
    original = hmac.compare_digest

    def recording_compare(left: bytes, right: bytes) -> bool:
        compared.append((len(left), len(right)))
        return original(left, right)

    monkeypatch.setattr(auth.hmac, "compare_digest", recording_compare)

    short = auth._same("x", "a-much-longer-expected-admin-token")
    same = auth._same("token-value", "token-value")

    assert short is False
    assert same is True
    # Both sides are digests of one length, whatever the inputs' lengths.
    assert compared == [(32, 32), (32, 32)]
