"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import shutil

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
