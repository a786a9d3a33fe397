"""The bridge with its store on a full or read-only file system.

Alertmanager retries a 5xx, so while the store cannot commit, the bridge
must answer 5xx, never 2xx, and say why in its log and in ``/readyz``. A
full disk heals when space returns, without a restart.

A tmpfs cannot be remounted read-only while the bridge holds the SQLite
file open for writing (``mount`` fails with EBUSY), so the read-only case
uses what makes a running system's disk read-only in practice: an ext4
file system mounted with ``errors=remount-ro`` that the kernel switches to
read-only after an error, here raised through ext4's ``trigger_fs_error``.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.processes import wait_for
from e2e.tmpfs import Tmpfs
from fakes.webhook_receiver import WebhookReceiver

from reliability.inprocess import firing_message
from reliability.running import SHARED_KEY, RunningBridge, bridge_process

pytestmark = [pytest.mark.root, pytest.mark.slow]

NOT_COMMITTED = {"error": "the bridge could not commit the message; retry later"}


def many_disks_message(start: int, count: int = 200) -> dict[str, object]:
    """Return one message whose alerts open ``count`` new disks."""
    message = firing_message()
    template = message["alerts"][0]  # type: ignore[index]
    message["alerts"] = [
        {**template, "labels": {**template["labels"], "service": f"s{start + i}"}}
        for i in range(count)
    ]
    return message


def write_until_full(descriptor: int, size: int) -> None:
    while True:
        try:
            os.write(descriptor, b"\0" * size)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            return


def fill(directory: Path) -> Path:
    """Write a file that takes every free block of the file system."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        # Large writes first, then small ones for the last partial block.
        for size in (65536, 512):
            write_until_full(descriptor, size)
    finally:
        os.close(descriptor)
    return filler


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(shared_key=SHARED_KEY) as fake:
        yield fake


def post_until_503(bridge: RunningBridge) -> int:
    """Post messages with new disks until one gets 503; return its index."""
    for index in range(60):
        response = bridge.post(many_disks_message(index * 1000))
        if response.status_code == 503:
            assert response.json() == NOT_COMMITTED
            return index
        assert response.status_code == 200, response.text
    pytest.fail("the store never ran out of space")


def test_full_disk_503_then_recovers(tmp_path: Path, receiver: WebhookReceiver) -> None:
    disk = Tmpfs(tmp_path / "store", size_mib=4)
    disk.mount()
    bridge = bridge_process(tmp_path, disk.mountpoint / "bridge.db", receiver.url)
    try:
        bridge.process.start()
        assert bridge.post(firing_message()).status_code == 200
        wait_for(lambda: len(receiver.events) == 1, 10, "the first notification")

        filler = fill(disk.mountpoint)
        index = post_until_503(bridge)
        ready = bridge.get("/readyz")
        log_while_full = bridge.log()

        filler.unlink()
        # Alertmanager sends the same message again; now it commits.
        retried = bridge.post(many_disks_message(index * 1000))
        wait_for(lambda: bridge.get("/readyz").status_code == 200, 10, "ready again")
        wait_for(lambda: len(receiver.events) > 1, 30, "notifications after space")
        running = bridge.process.running()
    finally:
        bridge.process.stop()
        disk.unmount()

    assert ready.status_code == 503
    reasons = ready.json()["reasons"]
    assert any(
        reason.startswith("store is not writable: ") and "full" in reason
        for reason in reasons
    ), reasons
    assert "message not committed" in log_while_full
    assert "database or disk is full" in log_while_full
    assert retried.status_code == 200
    assert running


def ext4_image(tmp_path: Path) -> tuple[Path, Path]:
    image = tmp_path / "store.img"
    with image.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mountpoint = tmp_path / "store"
    mountpoint.mkdir()
    return image, mountpoint


def test_read_only_disk_503_and_readyz(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    image, mountpoint = ext4_image(tmp_path)
    subprocess.run(
        ["mount", "-o", "loop,errors=remount-ro", str(image), str(mountpoint)],
        check=True,
    )
    bridge = bridge_process(tmp_path, mountpoint / "bridge.db", receiver.url)
    try:
        bridge.process.start()
        assert bridge.post(firing_message()).status_code == 200
        wait_for(lambda: len(receiver.events) == 1, 10, "the first notification")

        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(mountpoint)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        trigger = Path("/sys/fs/ext4") / os.path.basename(source) / "trigger_fs_error"
        trigger.write_text("webpaas reliability test\n", encoding="utf-8")
        options = subprocess.run(
            ["findmnt", "-n", "-o", "OPTIONS", str(mountpoint)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

        rejected = bridge.post(firing_message("d2"))
        ready = bridge.get("/readyz")
        log_text = bridge.log()
        running = bridge.process.running()
    finally:
        bridge.process.stop()
        subprocess.run(["umount", str(mountpoint)], check=True)

    assert "emergency_ro" in options or options.startswith("ro")
    assert rejected.status_code == 503
    assert rejected.json() == NOT_COMMITTED
    assert ready.status_code == 503
    assert any(
        reason.startswith("store is not writable: ")
        for reason in ready.json()["reasons"]
    )
    assert "message not committed" in log_text
    assert running
