"""Shared parts of the bridge benchmarks: processes, messages, figures.

Every server a benchmark starts listens on 127.0.0.1 on a free port, runs in
its own session (so that a server that forks, such as prom2teams' reloader,
is stopped whole by its own process group id) and is stopped by the
benchmark that started it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable

# Every alert of the benchmarks started firing at this instant, so a repeat
# has the same startsAt as the first message and the bridge treats it as the
# same firing period.
STARTS_AT = "2026-01-01T00:00:00.123456789Z"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# Parent of each run's private folder (tempfile.mkdtemp, mode 0700). It is
# on a disk because /tmp can be a tmpfs, which would fake the commit's cost.
WORKDIR = "/var/tmp"  # noqa: S108


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A server process on 127.0.0.1, started and stopped by one benchmark."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        ready_url: str,
        log: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.ready_url = ready_url
        self.log = log
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30.0) -> Server:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=1):  # noqa: S310
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready in {timeout:g} s")

    def stop(self) -> None:
        """Stop the process group this server leads: SIGTERM, then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def rss_kib(self) -> int:
        """Return the process's resident set size in KiB (VmRSS)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


class Receiver(Server):
    """The fast fake receiver of bench/receiver.py, with its records."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        super().__init__(
            "receiver",
            [PYTHON, str(BENCH / "receiver.py"), "--port", str(self.port)],
            f"http://127.0.0.1:{self.port}/_stats",
            workdir / "receiver.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        return get_json(f"{self.url}/_stats")

    def records(self) -> list[dict[str, Any]]:
        return get_json(f"{self.url}/_records", timeout=60)

    def reset(self) -> None:
        post_json(f"{self.url}/_reset", {})


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
        return json.load(response)


def post_json(
    url: str, document: Any, headers: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


class Bridge(Server):
    """``webpaas-bridge`` on a real SQLite file, with one webhook integration.

    The integration sends to ``webhook_url`` unsigned; the token that
    Alertmanager (or a benchmark's client) sends is random per run and is
    kept in a file readable only by its owner, never printed.
    """

    def __init__(
        self,
        workdir: Path,
        webhook_url: str | None,
        delivery: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.token = secrets.token_urlsafe(32)
        self.token_file = workdir / "bridge-token"
        self.token_file.write_text(self.token)
        self.token_file.chmod(0o600)
        self.db = workdir / "bridge.db"
        config: dict[str, Any] = {
            "bridge_token_file": str(self.token_file),
            "admin_token": secrets.token_urlsafe(32),
            "allow_private_targets": True,
            "log": {"level": "warning"},
            "integrations": [],
        }
        if webhook_url is not None:
            config["integrations"].append(
                {"id": "bench-hook", "type": "health.webhook", "url": webhook_url}
            )
        if delivery:
            config["delivery"] = delivery
        config_file = workdir / "bridge.yml"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        config_file.chmod(0o600)
        super().__init__(
            "bridge",
            [
                str(VENV_BIN / "webpaas-bridge"),
                "--config",
                str(config_file),
                "--listen",
                f"127.0.0.1:{self.port}",
                "--db",
                str(self.db),
            ],
            f"http://127.0.0.1:{self.port}/readyz",
            workdir / "bridge.log",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, message: dict[str, Any], timeout: float = 60) -> tuple[int, Any]:
        return post_json(
            f"{self.url}/alertmanager", message, self.auth_header, timeout=timeout
        )

    def outbox(self) -> dict[str, float]:
        """Return the outbox gauges of the bridge's /metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:  # noqa: S310
            text = response.read().decode()
        values = {}
        for line in text.splitlines():
            if line.startswith("webpaas_bridge_outbox_"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values


# Alertmanager messages ------------------------------------------------------


def disk_labels(index: int, prefix: str = "svc") -> dict[str, str]:
    return {
        "project": "bench",
        "environment": "production",
        "service": f"{prefix}-{index}",
        "instance": f"host-{index % 1000}:9847",
        "mountpoint": "/data",
        "device": "/dev/vdb",
        "fstype": "ext4",
    }


def alert(
    labels: dict[str, str],
    free_percent: str = "15.00",
    severity: str = "warning",
    status: str = "firing",
) -> dict[str, Any]:
    """Build one LowDiskSpace alert as Alertmanager's webhook sends it."""
    return {
        "status": status,
        "labels": {"alertname": "LowDiskSpace", "severity": severity, **labels},
        "annotations": {
            "summary": f"Low disk space ({severity}) on instance "
            f"{labels['instance']}, {labels['mountpoint']}",
            "description": f"{labels['mountpoint']} ({labels['device']}) of instance "
            f"{labels['instance']} has {free_percent}% space available.",
            "free_percent": free_percent,
            "warning_threshold": "20",
            "critical_threshold": "10",
        },
        "startsAt": STARTS_AT,
        "endsAt": GO_ZERO_TIME if status == "firing" else "2026-01-01T01:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=bench",
        "fingerprint": f"{abs(hash(labels['service'])):016x}"[:16],
    }


def message(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Wrap alerts in an Alertmanager webhook message (payload version 4)."""
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "receiver": "webpaas-health",
        "status": status,
        "alerts": alerts,
        "groupLabels": {"alertname": "LowDiskSpace"},
        "commonLabels": {"alertname": "LowDiskSpace", "project": "bench"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": '{}:{alertname="LowDiskSpace"}',
        "truncatedAlerts": 0,
    }


# Figures ---------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile, ``fraction`` in 0..1."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))
    return ordered[rank]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine() -> dict[str, str]:
    """Describe the machine the figures come from."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "memory": f"{memory_kib / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def filesystem_type(path: Path) -> str:
    """Return the type of the filesystem holding ``path``, from /proc/mounts."""
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        mountpoint = fields[1].replace("\\040", " ")
        inside = resolved == mountpoint or resolved.startswith(
            mountpoint.rstrip("/") + "/"
        )
        if inside and len(mountpoint) >= len(best):
            best, kind = mountpoint, fields[2]
    return kind


def print_header(title: str, argv: Sequence[str]) -> None:
    info = machine()
    print(f"# {title}")
    print(
        f"machine: nproc={info['nproc']} cpu={info['cpu']!r} "
        f"memory={info['memory']} python={info['python']} kernel={info['kernel']}"
    )
    print(f"command: {' '.join(argv)}")
    # Other work on the machine slows every figure; the load average shows it.
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average at start: {' '.join(load)}")
    print(f"time: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")


def verdict(name: str, ok: bool, detail: str) -> str:
    return f"goal {name}: {'met' if ok else 'MISSED'} ({detail})"


def add_workdir_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--workdir``, the folder for the SQLite file and logs."""
    parser.add_argument(
        "--workdir",
        default=WORKDIR,
        help=f"folder for the SQLite file and logs, on a real disk (default {WORKDIR})",
    )


def run_main(main: Callable[[], int]) -> None:
    """Run a benchmark's ``main``, print the elapsed time and exit with its status."""
    started = time.monotonic()
    status = main()
    print(f"elapsed: {time.monotonic() - started:.1f} s")
    sys.exit(status)
