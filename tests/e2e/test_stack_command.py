"""deploy/local/stack.sh: up, status, demo and down in a temporary state directory.

The stack runs on free ports and in a temporary state directory given by
environment variables, so it never touches a stack the user runs with the
defaults. The demo runs with the intervals it ships with, about 30 s.
"""

from __future__ import annotations

import os
import re
import signal
import socket
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

    def listeners(self, pid: int) -> list[str]:
        """Return the local addresses that ``pid`` listens on, TCP and UDP."""
        sockets = subprocess.run(
            ["ss", "-Hlntup"], capture_output=True, text=True, check=True
        ).stdout
        return [
            line.split()[4] for line in sockets.splitlines() if f"pid={pid}," in line
        ]


def port_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def mounted(path: Path) -> bool:
    mount_points = [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    return str(path) in mount_points


# The receiver prints one block per verified notification: a header line,
# the event type and summary, then indented fields.
RECEIVER_BLOCK = re.compile(
    r"^\[[^\]]+\] signature verified\n(?P<type>[A-Z_]+): .*\n"
    r"  disk: (?P<disk>.*)\n(?P<fields>(?:  .*\n)*)",
    re.MULTILINE,
)


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

    # The printed CLI settings reach the bridge's admin API. --no-check
    # keeps the integration from sending a test event to PagerDuty.
    settings = dict(re.findall(r"^  export (WEBPAAS_\w+)=(\S+)$", up.stdout, re.M))
    assert sorted(settings) == ["WEBPAAS_ADMIN_TOKEN_FILE", "WEBPAAS_API_URL"]
    routing_key = stack_command.state / "pagerduty.key"
    routing_key.write_text("0123456789abcdef0123456789abcdef\n")
    added = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "webpaas"),
            "integration:add",
            "--type=health.pagerduty",
            f"--routing-key-file={routing_key}",
            "--no-check",
        ],
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        check=False,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert "(health.pagerduty)" in added.stdout
    assert (
        http_status(f"http://127.0.0.1:{stack_command.ports['prometheus']}/-/ready")
        == 200
    )

    down = stack_command.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for part, pid in pids.items():
        assert not alive(pid), part
    for part, port in stack_command.ports.items():
        assert not port_answers(port), part
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


def test_stack_listens_on_loopback_only(stack_command: StackCommand) -> None:
    up = stack_command.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    pids = stack_command.pids()

    arguments = Path(f"/proc/{pids['alertmanager']}/cmdline").read_bytes()
    assert b"--cluster.listen-address=" in arguments.split(b"\0")
    for part, pid in pids.items():
        # Exactly the documented port; Alertmanager has no gossip listener.
        assert stack_command.listeners(pid) == [
            f"127.0.0.1:{stack_command.ports[part]}"
        ], part


@pytest.mark.root
def test_stack_demo_shows_every_notification(stack_command: StackCommand) -> None:
    up = stack_command.run("up")
    assert up.returncode == 0, up.stdout + up.stderr
    pids = stack_command.pids()
    demo_disk = stack_command.state / "demo-disk"

    demo = stack_command.run("demo")

    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "for this demonstration only" in demo.stdout
    log = (stack_command.state / "log" / "receiver.log").read_text()
    blocks = [
        block
        for block in RECEIVER_BLOCK.finditer(log)
        if f"mountpoint={demo_disk}," in block["disk"] + ","
    ]
    assert [block["type"] for block in blocks] == [
        "WARNING",
        "CRITICAL",
        "DEESCALATION",
        "ALL_CLEAR",
    ]
    levels = [re.search(r"^  level: (\w+)$", b["fields"], re.M) for b in blocks]
    assert [level[1] for level in levels if level] == [
        "warning",
        "critical",
        "warning",
        "ok",
    ]
    assert "service=demo" in blocks[0]["disk"]
    # Afterwards the stack runs on with the shipped intervals, and the
    # scratch filesystem is gone.
    assert not mounted(demo_disk)
    prometheus = (stack_command.state / "prometheus.yml").read_text()
    assert "evaluation_interval: 1m" in prometheus
    assert str(REPO / "rules" / "webpaas-disk.rules.yml") in prometheus
    after = stack_command.pids()
    assert {part: after[part] for part in PARTS if part != "exporter"} == {
        part: pids[part] for part in PARTS if part != "exporter"
    }
    assert stack_command.run("status").returncode == 0

    down = stack_command.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    for part, pid in after.items():
        assert not alive(pid), part
    for part, port in stack_command.ports.items():
        assert not port_answers(port), part
    assert not demo_disk.exists()
