"""Fixtures for the end-to-end tests: tmpfs disks, fake targets, the stack.

Every fixture stops what it started by pid and unmounts what it mounted,
even when the test fails. On a failure, the last lines of every process's
log are printed with the test's report.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import require_binary
from fakes.pagerduty import PagerDutyFake
from fakes.slack import SlackFake
from fakes.webhook_receiver import WebhookReceiver

from e2e.stack import Stack
from e2e.targets import Targets
from e2e.tmpfs import Tmpfs


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    if report.when == "call":
        item.stash[_failed_key] = report.failed
    return report


_failed_key = pytest.StashKey[bool]()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A temporary directory outside /tmp's tmpfs quirks, removed afterwards."""
    # Prometheus' TSDB wants a real directory; pytest's tmp_path would do,
    # but a short path keeps the mount points readable in messages.
    path = Path(tempfile.mkdtemp(prefix="webpaas-e2e-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def targets() -> Iterator[Targets]:
    """Fake Slack, PagerDuty and a signature-checking webhook receiver."""
    shared_key = secrets.token_urlsafe(32)
    with (
        SlackFake() as slack,
        PagerDutyFake() as pagerduty,
        WebhookReceiver(shared_key=shared_key) as webhook,
    ):
        yield Targets(slack, pagerduty, webhook, shared_key)


@pytest.fixture
def make_stack(
    request: pytest.FixtureRequest, workdir: Path, targets: Targets
) -> Iterator[Callable[..., Stack]]:
    """Return a function that mounts one tmpfs per service and starts the stack."""
    for binary in ("prometheus", "prometheus-alertmanager"):
        require_binary(binary)
    disks: list[Tmpfs] = []
    stacks: list[Stack] = []

    def make(*services: str) -> Stack:
        mounted = {}
        for service in services:
            disk = Tmpfs(workdir / "disks" / service)
            disk.mount()
            disks.append(disk)
            mounted[service] = disk
        stack = Stack(workdir, mounted, targets)
        stacks.append(stack)
        stack.start()
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            if request.node.stash.get(_failed_key, False):
                print(stack.logs())
            stack.stop()
        for disk in disks:
            disk.unmount()
