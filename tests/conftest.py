"""Fixtures shared by every test package.

Name resolution stays inside this machine in every test: the fuzz and
schemathesis tests create webhook integrations with generated URLs, and the
bridge's SSRF guard resolves their host names, so without this guard each
would be a DNS query to the system's resolver. In the test process only IP
literals and ``localhost`` resolve; every other name fails as an unknown
host would. Bridges started as subprocesses are only given IP literals.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from collections.abc import Iterator
from typing import Any

import pytest


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    # CI runs as root with the Debian packages installed, so a test that
    # needs them must fail there rather than skip: a skipped test in CI is a
    # test that does not exist. Outside CI, skip with the reason.
    if os.environ.get("CI"):
        return
    missing_root = os.geteuid() != 0
    for item in items:
        if missing_root and item.get_closest_marker("root"):
            item.add_marker(pytest.mark.skip(reason="needs root to mount filesystems"))


def require_binary(name: str) -> str:
    """Return the path of a Debian-packaged binary, failing with the install hint."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found on PATH; run deploy/local/setup.sh as root")
    return path


def _local(host: Any) -> bool:
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() == "localhost":
        return True
    try:
        ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return True


@pytest.fixture(autouse=True, scope="session")
def _no_dns() -> Iterator[None]:
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        if _local(host):
            return real(host, *args, **kwargs)
        raise socket.gaierror(
            socket.EAI_NONAME, f"name resolution is disabled in these tests: {host!r}"
        )

    socket.getaddrinfo = guarded
    try:
        yield
    finally:
        socket.getaddrinfo = real
