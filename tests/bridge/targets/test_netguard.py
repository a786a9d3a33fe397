"""SSRF guard: literal addresses, odd spellings and names that resolve inward.

Name resolution is simulated; no test sends traffic to a checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from bridge import netguard

ANSWERS = {
    "hooks.example.com": ["93.184.215.14"],
    "internal.example.com": ["10.1.2.3"],
    "mixed.example.com": ["93.184.215.14", "192.168.1.10"],
    "metadata.example.com": ["169.254.169.254"],
    "v6.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "v6-internal.example.com": ["fd00:ec2::254"],
    "localhost": ["127.0.0.1"],
}


async def fake_resolver(host: str, port: int) -> list[str]:
    try:
        return ANSWERS[host]
    except KeyError:
        raise OSError(f"no address for {host}") from None


def check(url: str, allow_private: bool = False) -> list[netguard.IPAddress]:
    return asyncio.run(
        netguard.check_url(url, allow_private=allow_private, resolver=fake_resolver)
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost/hook",  # loopback name, never resolved
        "http://app.localhost/hook",  # RFC 6761: every name under localhost
        "http://LOCALHOST./hook",  # case and a trailing dot
        "http://127.0.0.1/hook",  # loopback literal
        "http://127.1/hook",  # inet_aton short form of 127.0.0.1
        "http://2130706433/hook",  # decimal form of 127.0.0.1
        "http://0177.0.0.1/hook",  # octal form of 127.0.0.1
        "http://0x7f.0.0.1/hook",  # hexadecimal form
        "http://0.0.0.0/hook",  # unspecified, reaches loopback on Linux
        "http://0/hook",  # unspecified, one-part form
        "http://[::1]/hook",  # IPv6 loopback
        "http://[::]/hook",  # IPv6 unspecified
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6 loopback
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private
        "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 form of 169.254.169.254
        "http://[2002:7f00:1::1]/hook",  # 6to4 embedding 127.0.0.1
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://[fd00:ec2::254]/latest/meta-data/",  # AWS IPv6 metadata
        "http://10.0.0.1/hook",  # private 10/8
        "http://172.16.5.4/hook",  # private 172.16/12
        "http://192.168.1.1/hook",  # private 192.168/16
        "http://100.64.0.1/hook",  # shared address space (CGNAT)
        "http://169.254.10.10/hook",  # link-local
        "http://[fe80::1%25eth0]/hook",  # IPv6 link-local with a zone id
        "http://[fc00::1]/hook",  # unique-local
        "http://224.0.0.1/hook",  # multicast
        "http://[ff02::1]/hook",  # IPv6 multicast
        "http://240.0.0.1/hook",  # reserved 240/4
        "http://255.255.255.255/hook",  # broadcast
        "http://internal.example.com/hook",  # a name resolving to 10/8
        "http://mixed.example.com/hook",  # one of two answers is private
        "http://metadata.example.com/hook",  # a name for the metadata address
        "http://v6-internal.example.com/hook",  # a name for fd00:ec2::254
    ],
)
def test_check_url_rejects_internal(url: str) -> None:
    with pytest.raises(netguard.UnsafeTarget) as raised:
        check(url)

    assert raised.value.field == "url"
    assert "/hook" not in str(raised.value)
    assert "meta-data" not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://hooks.example.com/hook", "93.184.215.14"),  # public name
        ("http://93.184.215.14:8080/x", "93.184.215.14"),  # public literal
        ("https://v6.example.com/", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"),
        ("http://[::ffff:93.184.215.14]/", "::ffff:5db8:d70e"),  # mapped public
    ],
)
def test_check_url_accepts_public(url: str, expected: str) -> None:
    addresses = check(url)

    assert addresses == [ipaddress.ip_address(expected)]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/hook",  # not http(s)
        "file:///etc/passwd",  # not http(s), no host
        "hooks.example.com/hook",  # no scheme
        "http:///hook",  # no host
    ],
)
def test_check_url_rejects_bad_shape(url: str) -> None:
    with pytest.raises(netguard.UnsafeTarget):
        check(url)


def test_check_url_reports_unresolvable_name() -> None:
    with pytest.raises(netguard.ResolutionFailed) as raised:
        check("https://nowhere.example.com/hook")

    assert "nowhere.example.com" in str(raised.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://internal.example.com/hook",
        "http://[::1]/hook",
    ],
)
def test_check_url_allows_private_when_configured(url: str) -> None:
    addresses = check(url, allow_private=True)

    assert addresses


def test_check_url_never_echoes_query_secrets() -> None:
    url = "http://10.0.0.1/hook?token=s3cr3t-value"

    with pytest.raises(netguard.UnsafeTarget) as raised:
        check(url)

    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("[::1]", "::1"),
        ("example.com", None),
        ("256.1.1.1", None),  # a part over 255 is a name, not an address
        ("1.2.3.4.5", None),
        ("09.1.1.1", None),  # 9 is not an octal digit
    ],
)
def test_parse_host_address_spellings(host: str, expected: str | None) -> None:
    parsed = netguard.parse_host_address(host)

    assert parsed == (ipaddress.ip_address(expected) if expected else None)


def test_system_resolver_resolves_loopback_name() -> None:
    addresses = asyncio.run(netguard.system_resolver("localhost", 80))

    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)
