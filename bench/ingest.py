"""Ingest: messages per second of the bridge, its ceiling and prom2teams.

Three servers take the same load from wrk (32 connections, one alert per
message, new and repeated disks mixed, see bench/alertmanager_load.lua),
one after the other in one run:

- the ceiling: a Starlette endpoint that reads the body and returns 200, on
  the uvicorn options that ``webpaas-bridge`` uses (bench/noop_server.py);
- the bridge: ``webpaas-bridge`` on a SQLite file on disk (WAL,
  ``synchronous=FULL``), answering 2xx only after the commit, with one
  webhook integration that sends each transition to a local receiver while
  the load runs;
- prom2teams 4.2.0, run by its own ``prom2teams`` command, forwarding each
  message to the same local receiver (which answers ``1``, as Microsoft
  Teams does).

prom2teams is installed on first use into bench/.venvs/prom2teams (ignored
by git); see `ensure_prom2teams`.

Run: ``.venv/bin/python bench/ingest.py`` (about a minute; ``--smoke`` for
a seconds-long check with tiny sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import harness

from bridge.alertmanager import parse_message
from bridge.state import apply_alerts, group_by_disk

VENVS = harness.BENCH / ".venvs"
PROM2TEAMS_VENV = VENVS / "prom2teams"
PROM2TEAMS_REQUIREMENTS = harness.BENCH / "prom2teams-requirements.txt"
LOAD_SCRIPT = harness.BENCH / "alertmanager_load.lua"

# Python 3.10 removed the aliases of the collections.abc classes from
# collections; prom2teams' pinned Flask stack still imports them from there.
SITECUSTOMIZE = '''"""Restore the collections.abc aliases that Python 3.10 removed."""

import collections
import collections.abc

for _name in collections.abc.__all__:
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
'''

GOAL_RATE = 2000.0
GOAL_P99_MS = 25.0


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _pip(venv: Path, *arguments: str) -> None:
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *arguments],
        check=True,
    )


def ensure_prom2teams(venv: Path = PROM2TEAMS_VENV) -> Path:
    """Install prom2teams 4.2.0 into its own venv once; return its command.

    PyYAML 5.4 builds only with Cython before 3 and without build isolation,
    and prom2teams' pinned uWSGI does not build at all, so the packages go in
    with ``--no-deps`` from bench/prom2teams-requirements.txt. A marker file
    written last makes a half-finished install start over.
    """
    command = venv / "bin" / "prom2teams"
    marker = venv / ".bench-installed"
    if marker.exists() and command.exists():
        return command
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    _pip(venv, "cython<3", "wheel")
    _pip(venv, "--no-build-isolation", "--no-deps", "pyyaml==5.4")
    _pip(venv, "--no-deps", "-r", str(PROM2TEAMS_REQUIREMENTS))
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "sitecustomize.py").write_text(SITECUSTOMIZE)
    marker.write_text("prom2teams 4.2.0\n")
    return command


def _template(path: Path) -> None:
    labels = harness.disk_labels(0)
    labels["service"] = "@SERVICE@"
    labels["instance"] = "@INSTANCE@"
    document = harness.message([harness.alert(labels, free_percent="@FREE@")])
    path.write_text(json.dumps(document))


def decide_ms(count: int) -> float:
    """Return the CPU milliseconds per message of parsing and the state machine.

    Each message is one alert for a new disk, as the load's new messages
    are, handled in this process without a server or a store: the least
    that any bridge on this design does per message besides HTTP.
    """
    bodies = [
        json.dumps(harness.message([harness.alert(harness.disk_labels(index))]))
        for index in range(count)
    ]
    now = datetime.now(UTC)
    started = time.process_time()
    for body in bodies:
        message = parse_message(body.encode())
        for disk, alerts in group_by_disk(message.alerts).items():
            apply_alerts(
                disk,
                None,
                alerts,
                now=now,
                new_event_id=lambda: str(uuid.uuid4()),
                external_url=message.external_url,
            )
    return (time.process_time() - started) * 1000 / count


def run_wrk(
    name: str,
    url: str,
    path: str,
    workdir: Path,
    arguments: argparse.Namespace,
    token_file: Path | None = None,
) -> Result:
    """Warm the server up for a second, then measure it with wrk."""
    template = workdir / "message.json"
    _template(template)
    out = workdir / f"wrk-{name}.json"
    env = {
        **os.environ,
        "BENCH_TEMPLATE": str(template),
        "BENCH_PATH": path,
        "BENCH_TOKEN_FILE": str(token_file or ""),
        "BENCH_NEW_PERCENT": str(arguments.new_percent),
        "BENCH_OUT": str(out),
    }
    for duration in (arguments.warmup, arguments.duration):
        subprocess.run(
            [
                "wrk",
                f"-t{arguments.threads}",
                f"-c{arguments.connections}",
                f"-d{duration}s",
                "--timeout",
                "10s",
                "-s",
                str(LOAD_SCRIPT),
                url,
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    figures = json.loads(out.read_text())
    return Result(
        name=name,
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1e6,
        non_2xx=figures["non_2xx"],
        socket_errors=figures["connect_errors"]
        + figures["read_errors"]
        + figures["write_errors"]
        + figures["timeouts"],
        p50_ms=figures["p50_us"] / 1000,
        p90_ms=figures["p90_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )


def measure_ceiling(workdir: Path, arguments: argparse.Namespace) -> Result:
    port = harness.free_port()
    server = harness.Server(
        "ceiling",
        [sys.executable, str(harness.BENCH / "noop_server.py"), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        workdir / "ceiling.log",
    )
    with server:
        return run_wrk(
            "ceiling", f"http://127.0.0.1:{port}", "/alertmanager", workdir, arguments
        )


def measure_bridge(
    workdir: Path, receiver: harness.Receiver, arguments: argparse.Namespace
) -> tuple[Result, dict[str, float]]:
    bridge_dir = workdir / "bridge"
    bridge_dir.mkdir()
    receiver.reset()
    with harness.Bridge(bridge_dir, f"{receiver.url}/hook") as bridge:
        result = run_wrk(
            "bridge", bridge.url, "/alertmanager", workdir, arguments, bridge.token_file
        )
        outbox = bridge.outbox()
        outbox["deliveries_received"] = receiver.stats()["count"]
    return result, outbox


def measure_prom2teams(
    workdir: Path,
    receiver: harness.Receiver,
    command: Path,
    arguments: argparse.Namespace,
) -> Result:
    port = harness.free_port()
    config = workdir / "prom2teams.ini"
    config.write_text(
        "[HTTP Server]\n"
        "Host: 127.0.0.1\n"
        f"Port: {port}\n\n"
        "[Microsoft Teams]\n"
        f"Connector: {receiver.url}/teams\n\n"
        "[Log]\n"
        "Level: WARNING\n"
    )
    server = harness.Server(
        "prom2teams",
        [str(command), "--configpath", str(config)],
        f"http://127.0.0.1:{port}/alive",
        workdir / "prom2teams.log",
    )
    with server:
        return run_wrk(
            "prom2teams",
            f"http://127.0.0.1:{port}",
            "/v2/connector",
            workdir,
            arguments,
        )


def report(results: list[Result], outbox: dict[str, float], decide: float) -> None:
    ceiling = next(r for r in results if r.name == "ceiling")
    bridge = next(r for r in results if r.name == "bridge")
    print()
    print(
        f"{'server':<12} {'messages/s':>11} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} {'of ceiling':>10}"
    )
    for result in results:
        share = result.rate / ceiling.rate if ceiling.rate else 0.0
        print(
            f"{result.name:<12} {result.rate:>11.0f} {result.p50_ms:>8.2f} "
            f"{result.p90_ms:>8.2f} {result.p99_ms:>8.2f} {result.non_2xx:>8d} "
            f"{result.socket_errors:>8d} {share:>10.2f}"
        )
    print(
        "bridge outbox after the run: "
        f"deliveries received={outbox.get('deliveries_received', 0):.0f} "
        f"pending={outbox.get('webpaas_bridge_outbox_pending', 0):.0f} "
        f"dead={outbox.get('webpaas_bridge_outbox_dead', 0):.0f}"
    )
    # The ceiling's server runs on one core while wrk has the other, so its
    # time per message is about what the HTTP stack costs on that core.
    ceiling_ms = 1000 / ceiling.rate if ceiling.rate else 0.0
    bound = 1000 / (ceiling_ms + decide)
    print(
        f"without storage: HTTP {ceiling_ms:.3f} ms (the ceiling's time per "
        f"message) + parse and state machine {decide:.3f} ms (in process) = "
        f"at most {bound:.0f}/s on one core, {bound / ceiling.rate:.2f} of the "
        "ceiling (an estimate)"
    )
    print()
    print(
        harness.verdict(
            "rate >= 2,000 messages/s",
            bridge.rate >= GOAL_RATE,
            f"{bridge.rate:.0f}/s",
        )
    )
    print(
        harness.verdict(
            "rate >= half the ceiling",
            bridge.rate >= ceiling.rate / 2,
            f"{bridge.rate / ceiling.rate:.2f} of {ceiling.rate:.0f}/s",
        )
    )
    print(
        harness.verdict(
            "p99 < 25 ms", bridge.p99_ms < GOAL_P99_MS, f"{bridge.p99_ms:.2f} ms"
        )
    )
    rival = next((r for r in results if r.name == "prom2teams"), None)
    if rival is not None:
        print(
            harness.verdict(
                "ahead of prom2teams",
                bridge.rate > rival.rate,
                f"{bridge.rate / rival.rate:.1f} times its rate, p50 "
                f"{bridge.p50_ms:.2f} ms against {rival.p50_ms:.2f} ms",
            )
        )
    errors = sum(r.non_2xx + r.socket_errors for r in results if r.name != "prom2teams")
    if errors:
        print(f"warning: {errors} failed requests to the ceiling or the bridge")


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--duration", type=int, default=10, help="seconds per server")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--new-percent",
        type=int,
        default=25,
        help="percent of messages for a new disk (default 25)",
    )
    parser.add_argument(
        "--no-prom2teams", action="store_true", help="skip the prom2teams run"
    )
    harness.add_workdir_option(parser)
    arguments = parser.parse_args()
    if arguments.smoke:
        arguments.duration = 1
        arguments.warmup = 1
        arguments.connections = 4
    return arguments


def main() -> int:
    arguments = parse_arguments()
    if shutil.which("wrk") is None:
        print(
            "wrk is missing; install it with: apt-get install -y wrk", file=sys.stderr
        )
        return 1
    harness.print_header("ingest", [sys.executable, *sys.argv])
    print(
        f"load: wrk -t{arguments.threads} -c{arguments.connections} "
        f"-d{arguments.duration}s, 1 alert per message, "
        f"{arguments.new_percent}% new disks"
    )

    command = None
    if arguments.no_prom2teams:
        print("prom2teams: skipped (--no-prom2teams)")
    elif arguments.smoke and not (PROM2TEAMS_VENV / ".bench-installed").exists():
        print("prom2teams: skipped (not installed; a run without --smoke installs it)")
    else:
        command = ensure_prom2teams()

    workdir = Path(
        tempfile.mkdtemp(prefix="webpaas-bench-ingest-", dir=arguments.workdir)
    )
    print(f"store: {workdir} on {harness.filesystem_type(workdir)}")
    try:
        with harness.Receiver(workdir) as receiver:
            results = [measure_ceiling(workdir, arguments)]
            bridge, outbox = measure_bridge(workdir, receiver, arguments)
            results.append(bridge)
            if command is not None:
                receiver.reset()
                results.append(
                    measure_prom2teams(workdir, receiver, command, arguments)
                )
        report(results, outbox, decide_ms(200 if arguments.smoke else 20_000))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    harness.run_main(main)
