"""deploy/local/stack.sh: up, status and down in a temporary state directory.

The stack runs on free ports and in a temporary state directory given by
environment variables, so it never touches a stack the user runs with the
defaults.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.processes import free_port, http_status, wait_for

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "deploy" / "local" / "stack.sh"
PARTS = ("receiver", "bridge", "alertmanager", "prometheus", "exporter")
# Exit status of `status` when a part is stopped, as LSB init scripts use.
STATUS_STOPPED = 3


class StackCommand:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.ports = {part: free_port() for part in PARTS}
        self.env = {
            **os.environ,
            "WEBPAAS_STACK_DIR": str(state),
            **{
                f"WEBPAAS_STACK_{part.upper()}_PORT": str(port)
                for part, port in self.ports.items()
            },
        }

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STACK), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    def pids(self) -> dict[str, int]:
        pids = {}
        for part in PARTS:
            pid_file = self.state / "run" / f"{part}.pid"
            if pid_file.exists():
                pids[part] = int(pid_file.read_text())
        return pids

    def secrets(self) -> list[str]:
        return [path.read_text().strip() for path in (self.state / "secrets").iterdir()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return "zombie"


@pytest.fixture
def stack_command(tmp_path: Path) -> Iterator[StackCommand]:
    command = StackCommand(tmp_path / "state")
    started: dict[str, int] = {}
    try:
        yield command
    finally:
        started.update(command.pids())
        command.run("down")
        # Whatever `down` missed is stopped here, by pid, and fails the test
        # through the assertions below it in the tests.
        for pid in started.values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_stack_up_status_down(stack_command: StackCommand) -> None:
    up = stack_command.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    pids = stack_command.pids()

    assert sorted(pids) == sorted(PARTS)
    for part, port in stack_command.ports.items():
        assert f"127.0.0.1:{port}" in up.stdout, part
    assert "integration:add" in up.stdout
    assert str(stack_command.state / "secrets" / "admin-token") in up.stdout
    for secret in stack_command.secrets():
        assert secret not in up.stdout + up.stderr

    status = stack_command.run("status")
    assert status.returncode == 0, status.stdout
    assert (
        http_status(f"http://127.0.0.1:{stack_command.ports['prometheus']}/-/ready")
        == 200
    )

    down = stack_command.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for part, pid in pids.items():
        assert not alive(pid), part
    assert stack_command.run("status").returncode == STATUS_STOPPED
    assert not list((stack_command.state / "run").glob("*.pid"))


def test_stack_up_is_idempotent(stack_command: StackCommand) -> None:
    first = stack_command.run("up")
    assert first.returncode == 0, first.stdout + first.stderr
    pids = stack_command.pids()

    # A second `up` keeps every running part.
    second = stack_command.run("up")
    assert second.returncode == 0, second.stdout + second.stderr
    assert stack_command.pids() == pids

    # A part that died is started again; the others keep running.
    os.kill(pids["receiver"], signal.SIGKILL)
    wait_for(lambda: not alive(pids["receiver"]), 10, "the receiver to exit")
    third = stack_command.run("up")
    assert third.returncode == 0, third.stdout + third.stderr
    restarted = stack_command.pids()
    assert restarted["receiver"] != pids["receiver"]
    assert {part: pid for part, pid in restarted.items() if part != "receiver"} == {
        part: pid for part, pid in pids.items() if part != "receiver"
    }


def test_stack_state_readable_by_owner_only(stack_command: StackCommand) -> None:
    up = stack_command.run("up")
    assert up.returncode == 0, up.stdout + up.stderr

    state = stack_command.state
    assert state.stat().st_mode & 0o777 == 0o700
    assert (state / "secrets").stat().st_mode & 0o777 == 0o700
    for path in (state / "secrets").iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path.name
    for name in ("bridge.yml", "prometheus.yml", "alertmanager.yml", "exporter.yml"):
        assert (state / name).stat().st_mode & 0o077 == 0, name
    # Each secret decodes to at least 32 bytes, as HS256 keys must.
    for secret in stack_command.secrets():
        assert len(secret) >= 43


def test_stack_alertmanager_without_cluster_listener(
    stack_command: StackCommand,
) -> None:
    up = stack_command.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    pid = stack_command.pids()["alertmanager"]

    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"--cluster.listen-address=" in arguments
    listening = subprocess.run(
        ["ss", "-Hltnp"], capture_output=True, text=True, check=True
    ).stdout
    for line in listening.splitlines():
        if f"pid={pid}," in line:
            assert " 127.0.0.1:" in line, line
