"""SSRF guard: keep user-supplied webhook URLs away from internal addresses.

A webhook URL comes from any user allowed to add an integration, and the
bridge sends a POST to it from inside the deployment. Without a guard, such a URL
can reach loopback services, the private network or a cloud metadata
endpoint (``169.254.169.254``, ``fd00:ec2::254``).

`check_url` rejects a URL whose host is, or resolves to, any address that
is not globally routable. It runs twice: when an integration is validated,
and right before each delivery, because a DNS answer can change between
the two. Every address a name resolves to is checked, since a resolver may
rotate answers, and the caller is given the checked addresses so that it
can connect to one of them instead of resolving the name again
(`pinned_url`).

Host spellings that C's ``inet_aton`` accepts are parsed the same way
(``127.1``, ``2130706433``, ``0177.0.0.1``, ``0x7f.0.0.1``), because some
HTTP stacks and proxies resolve them like that. IPv6 forms that embed an
IPv4 address (IPv4-mapped, NAT64, 6to4) are checked by their IPv4 address.

With ``allow_private=True`` (tests and local use) nothing is rejected, but
names are still resolved so that deliveries connect to the checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from collections.abc import Awaitable, Callable

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Resolve a host name and port to the IP addresses a connection could use.
Resolver = Callable[[str, int], Awaitable[list[str]]]

# Cloud metadata services: AWS, GCP, Azure and others serve on the IPv4
# address, and AWS also on the IPv6 one (its IMDS IPv6 endpoint).
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# RFC 6598 shared address space (carrier-grade NAT). Python 3.11 counts it
# as neither private nor global, so it gets its own reason.
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
# RFC 6052 well-known NAT64 prefix: the last 32 bits are an IPv4 address.
_NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")

# RFC 6761 section 6.3: "localhost" and every name under it are loopback.
_LOCALHOST_NAMES = ("localhost",)


class UnsafeTarget(Exception):
    """A URL that must not be sent to. The message names the host, never the URL.

    ``field`` is the integration field the URL came from, for `Problem`.
    """

    def __init__(self, message: str, field: str = "url") -> None:
        super().__init__(message)
        self.field = field


class ResolutionFailed(UnsafeTarget):
    """The host name did not resolve, which may be transient (a DNS outage)."""


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the operating system's resolver (getaddrinfo)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_host_address(host: str) -> IPAddress | None:
    """Return the IP address that ``host`` spells, or ``None`` for a name.

    Accepts bracketed and plain IPv6 (with a zone id, which is dropped) and
    every IPv4 spelling of ``inet_aton``: one to four parts, each decimal,
    octal (leading ``0``) or hexadecimal (leading ``0x``), the last part
    filling the remaining bytes.
    """
    text = host.strip().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            return None
    return _parse_inet_aton(text)


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers = []
    for part in parts:
        number = _parse_inet_aton_part(part)
        if number is None:
            return None
        numbers.append(number)

    *leading, last = numbers
    if any(number > 0xFF for number in leading):
        return None
    last_bits = 8 * (4 - len(leading))
    if last >= 1 << last_bits:
        return None
    value = last
    for index, number in enumerate(leading):
        value |= number << (24 - 8 * index)
    return ipaddress.IPv4Address(value)


def _parse_inet_aton_part(part: str) -> int | None:
    lowered = part.lower()
    try:
        if lowered.startswith("0x"):
            return int(lowered[2:], 16) if lowered[2:] else 0
        if len(lowered) > 1 and lowered.startswith("0"):
            return int(lowered[1:], 8)
        if lowered.isdigit():
            return int(lowered, 10)
    except ValueError:
        return None
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def blocked_reason(address: IPAddress) -> str | None:
    """Name why ``address`` is not a safe target, or return ``None`` if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = blocked_reason(embedded)
            return f"embeds {embedded}, {reason}" if reason else None

    checks = (
        (address in _METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (
            isinstance(address, ipaddress.IPv4Address)
            and address in _SHARED_ADDRESS_SPACE,
            "a shared (carrier-grade NAT) address",
        ),
        (
            isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL,
            "a unique-local address",
        ),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "not a globally routable address"),
    )
    for matched, reason in checks:
        if matched:
            return reason
    return None


def _default_port(url: httpx.URL) -> int:
    if url.port is not None:
        return url.port
    return 443 if url.scheme == "https" else 80


async def check_url(
    url: str | httpx.URL,
    *,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    field: str = "url",
) -> list[IPAddress]:
    """Check that ``url`` targets only public addresses and return them.

    The returned addresses are those the host spells or resolves to, in
    resolver order; a delivery should connect to one of them.

    Raises:
        UnsafeTarget: the URL is not http(s), has no host, or its host is
            or resolves to an address that is not globally routable.
        ResolutionFailed: the host name did not resolve.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        # httpx rejects some inet_aton spellings such as 0177.0.0.1; name
        # the address they stand for, since that is the real problem.
        if not allow_private:
            _raise_if_blocked_literal(str(url), field)
        raise UnsafeTarget("is not a valid URL", field) from error
    if parsed.scheme not in ("http", "https"):
        raise UnsafeTarget("must start with http:// or https://", field)
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise UnsafeTarget("has no host", field)

    literal = parse_host_address(host)
    if literal is not None:
        addresses: list[IPAddress] = [literal]
    elif not allow_private and (
        host in _LOCALHOST_NAMES or host.endswith(".localhost")
    ):
        raise UnsafeTarget(f"host {host!r} is a loopback name", field)
    else:
        addresses = await _resolve(host, _default_port(parsed), resolver, field)

    if not allow_private:
        for address in addresses:
            reason = blocked_reason(address)
            if reason is not None:
                shown = host if literal is None else parsed.host
                raise UnsafeTarget(
                    f"host {shown!r} resolves to {address}, {reason}; "
                    "webhooks may only target public addresses",
                    field,
                )
    return addresses


def _raise_if_blocked_literal(url: str, field: str) -> None:
    try:
        host = urllib.parse.urlsplit(url).hostname or ""
    except ValueError:
        return
    address = parse_host_address(host)
    reason = blocked_reason(address) if address is not None else None
    if reason is not None:
        raise UnsafeTarget(
            f"host {host!r} is {address}, {reason}; "
            "webhooks may only target public addresses",
            field,
        )


async def _resolve(
    host: str, port: int, resolver: Resolver, field: str
) -> list[IPAddress]:
    try:
        answers = await resolver(host, port)
    except (OSError, UnicodeError) as error:
        raise ResolutionFailed(f"host {host!r} could not be resolved", field) from error

    addresses: list[IPAddress] = []
    for answer in answers:
        address = parse_host_address(answer)
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ResolutionFailed(f"host {host!r} resolved to no address", field)
    return addresses


def pinned_url(url: httpx.URL, address: IPAddress) -> httpx.URL:
    """Return ``url`` with its host replaced by the already checked ``address``.

    The connection then goes to the checked address, not to whatever the
    name resolves to later. The caller must send the original host in the
    ``Host`` header so that virtual hosting still works.
    """
    return url.copy_with(host=str(address))
