"""Compare scrapes of webpaas-disk-exporter with node_exporter on the same mounts.

Run as root from the repository:

    .venv/bin/python bench/exporter_scrape.py            # 1,000 tmpfs mounts
    .venv/bin/python bench/exporter_scrape.py --smoke    # 20 mounts, seconds

The script re-executes itself in new mount and PID namespaces (``unshare
--mount --propagation private --pid --fork --mount-proc``). The mounts it
makes are then invisible to the host, and they disappear with the namespace
even when the script is killed. The PID namespace is needed as well, because
node_exporter 1.5 reads ``/proc/1/mounts``, the mount table of PID 1, not
its own. Ctrl-C stops a run and cleans up.

Inside, it mounts N small tmpfs filesystems under a temporary directory and
starts both exporters on 127.0.0.1, restricted to those mounts. After a
warm-up it scrapes them in alternation, over a new connection each time.
The table it prints has the scrape time percentiles, each exporter's own
collection time, CPU per scrape, the filesystem series each returned and
resident memory. Both series counts must equal N, which shows that both
exporters did the same work; otherwise the script exits with status 1.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
NAMESPACE_MARKER = "WEBPAAS_BENCH_IN_NAMESPACE"
HOST = "127.0.0.1"
TMPFS_SOURCE = b"webpaas-bench"
MEMORY_GOAL_BYTES = 40_000_000
START_TIMEOUT_SECONDS = 15.0
SCRAPE_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0


@dataclass
class Exporter:
    """One exporter process under test and what its scrapes measured."""

    name: str
    command: list[str]
    port: int
    size_metric: bytes
    duration_prefix: bytes
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    scrape_seconds: list[float] = field(default_factory=list)
    collect_seconds: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    start_rss_kib: int = 0
    series: int = 0
    bench_series: int = 0
    samples: int = 0
    body_bytes: int = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def main() -> int:
    """Parse the options, enter the namespaces, run the benchmark."""
    args = _parse_args()
    if os.geteuid() != 0:
        print("exporter_scrape.py: must run as root to mount tmpfs", file=sys.stderr)
        return 2
    if os.environ.get(NAMESPACE_MARKER) != "1":
        _reexec_in_namespace()
    if os.getpid() != 1:
        print(
            "exporter_scrape.py: not PID 1 of a new PID namespace; "
            f"unset {NAMESPACE_MARKER} and run again",
            file=sys.stderr,
        )
        return 2
    try:
        return run(args.exporter, args.mounts, args.scrapes, args.warmup)
    except KeyboardInterrupt:
        print("exporter_scrape.py: interrupted", file=sys.stderr)
        return 130


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scrape webpaas-disk-exporter and node_exporter's filesystem "
        "collector on the same tmpfs mounts and compare time and memory."
    )
    parser.add_argument(
        "--mounts", type=int, default=1000, help="tmpfs mounts (default 1000)"
    )
    parser.add_argument(
        "--scrapes",
        type=int,
        default=300,
        help="measured scrapes of each exporter (default 300)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="unmeasured scrapes of each exporter first (default 20)",
    )
    parser.add_argument(
        "--exporter",
        default=str(Path(sys.executable).parent / "webpaas-disk-exporter"),
        help="webpaas-disk-exporter executable to measure (default: the one "
        "installed beside this Python), for comparing two versions",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="20 mounts, 5 scrapes, 2 warm-up scrapes: checks that the script runs",
    )
    args = parser.parse_args()
    if args.smoke:
        args.mounts, args.scrapes, args.warmup = 20, 5, 2
    if args.mounts < 1 or args.scrapes < 2 or args.warmup < 0:
        parser.error("--mounts must be at least 1 and --scrapes at least 2")
    return args


def _reexec_in_namespace() -> None:
    # unshare (util-linux 2.38) blocks SIGINT and SIGTERM while it waits.
    # When it dies anyway (SIGKILL, as from a test timeout), --kill-child
    # sends SIGTERM to the script, which then cleans up. Once the script, PID
    # 1 of the new namespace, exits, the kernel kills both exporters and
    # drops the mount namespace with every mount in it.
    unshare = shutil.which("unshare")
    if unshare is None:
        sys.exit("exporter_scrape.py: unshare (util-linux) not found on PATH")
    os.environ[NAMESPACE_MARKER] = "1"
    os.execv(  # noqa: S606 - a fixed argument list, no shell involved
        unshare,
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child=SIGTERM",
            "--",
            sys.executable,
            os.path.abspath(__file__),
            *sys.argv[1:],
        ],
    )


def run(executable: str, mount_count: int, scrapes: int, warmup: int) -> int:
    """Mount, start both exporters, scrape and print the table.

    Returns:
        The exit status: 0, or 1 when the two exporters did not return the
        same filesystems.
    """
    root = Path(tempfile.mkdtemp(prefix="webpaas_bench_"))
    # The node_exporter pattern below spells the root out character by
    # character, which is only simple for these characters.
    if not all(c.isalnum() or c in "/_" for c in str(root)):
        print(f"exporter_scrape.py: unusable temporary path {root}", file=sys.stderr)
        root.rmdir()
        return 2

    # PID 1 of a namespace gets no signal it has no handler for.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    mounted: list[Path] = []
    exporters: list[Exporter] = []
    try:
        # The mount points are on a tmpfs mounted at the root, so a run killed before
        # its cleanup leaves one empty directory on the host, not 1,000.
        _mount_one(root, mounted)
        for index in range(mount_count):
            path = root / f"m{index:04d}"
            path.mkdir()
            _mount_one(path, mounted)
        exporters = _make_exporters(executable, root)
        for exporter in exporters:
            _start(exporter)
        _measure(exporters, root, scrapes, warmup)
        memory = {exporter.name: _memory_kib(exporter.pid) for exporter in exporters}
        problems = _check(exporters, mount_count)
        _print_table(exporters, memory, mount_count, scrapes, warmup)
        for problem in problems:
            print(f"INVALID: {problem}")
        return 1 if problems else 0
    finally:
        for exporter in exporters:
            _stop(exporter)
        _unmount(mounted)
        shutil.rmtree(root, ignore_errors=True)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _mount_one(path: Path, mounted: list[Path]) -> None:
    # ctypes calls mount(2) directly: 1,000 runs of mount(8) would take
    # seconds longer than the scrapes.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(TMPFS_SOURCE, bytes(path), b"tmpfs", 0, b"size=1m") != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount tmpfs on {path}: {os.strerror(error)}")
    mounted.append(path)


def _unmount(mounted: list[Path]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    for path in reversed(mounted):
        if libc.umount2(bytes(path), 0) != 0:
            error = ctypes.get_errno()
            print(f"umount {path} failed: {os.strerror(error)}", file=sys.stderr)


def _make_exporters(executable: str, root: Path) -> list[Exporter]:
    prefix = f"{root}/m"
    config = root / "exporter.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "discovery": {
                    "service": "bench",
                    "mount_points_include": f"^{prefix}[0-9]+$",
                }
            }
        ),
        encoding="utf-8",
    )
    our_port = _free_port()
    ours = Exporter(
        name="webpaas-disk-exporter",
        command=[
            executable,
            "--config",
            str(config),
            "--listen",
            f"{HOST}:{our_port}",
            "--log-level",
            "WARNING",
        ],
        port=our_port,
        size_metric=b"webpaas_disk_size_bytes{",
        duration_prefix=b"webpaas_disk_collect_duration_seconds ",
        log_path=root / "webpaas-disk-exporter.log",
    )
    node_port = _free_port()
    node = Exporter(
        name="node_exporter",
        command=[
            NODE_EXPORTER,
            "--collector.disable-defaults",
            "--collector.filesystem",
            # promhttp_*, process_* and go_* are not filesystem work.
            "--web.disable-exporter-metrics",
            f"--web.listen-address={HOST}:{node_port}",
            # Version 1.5 has no include pattern, so the exclude pattern
            # matches every mount point outside the benchmark's.
            f"--collector.filesystem.mount-points-exclude={_not_prefix(prefix)}",
        ],
        port=node_port,
        size_metric=b"node_filesystem_size_bytes{",
        duration_prefix=(
            b'node_scrape_collector_duration_seconds{collector="filesystem"} '
        ),
        log_path=root / "node_exporter.log",
    )
    return [ours, node]


def _not_prefix(prefix: str) -> str:
    """Build an RE2 pattern for strings that do not start with ``prefix``.

    Go's regexp has no negative lookahead, so the pattern accepts a string
    that ends, or differs, at each position of the prefix in turn.
    """
    pattern = f"(?:$|[^{prefix[-1]}])"
    for char in reversed(prefix[:-1]):
        pattern = f"(?:$|[^{char}]|{char}{pattern})"
    return "^" + pattern


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _start(exporter: Exporter) -> None:
    with exporter.log_path.open("wb") as log:
        # A session of its own keeps Ctrl-C from stopping the exporter in the
        # middle of a scrape. The script stops it afterwards.
        exporter.process = subprocess.Popen(
            exporter.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if exporter.process.poll() is not None:
            break
        try:
            _get(exporter.port, "/")
        except OSError:
            time.sleep(0.05)
        else:
            exporter.start_rss_kib = _memory_kib(exporter.pid)["VmRSS"]
            return
    log_text = exporter.log_path.read_text(errors="replace")
    raise RuntimeError(f"{exporter.name} did not start:\n{log_text}")


def _stop(exporter: Exporter) -> None:
    process = exporter.process
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _get(port: int, path: str) -> bytes:
    # A new connection per scrape, since the WSGI server of
    # webpaas-disk-exporter speaks HTTP/1.0. http.client sends
    # Accept-Encoding: identity, so node_exporter does not gzip either.
    connection = http.client.HTTPConnection(HOST, port, timeout=SCRAPE_TIMEOUT_SECONDS)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"GET {path} on port {port}: HTTP {response.status}")
    return body


def _measure(exporters: list[Exporter], root: Path, scrapes: int, warmup: int) -> None:
    for _ in range(warmup):
        for exporter in exporters:
            _get(exporter.port, "/metrics")

    cpu_before = {exporter.name: _cpu_seconds(exporter.pid) for exporter in exporters}
    mount_label = f'mountpoint="{root}/m'.encode()
    for round_index in range(scrapes):
        # Swap the order every round, so neither exporter always follows the
        # other's burst of CPU and page cache activity.
        order = exporters if round_index % 2 == 0 else exporters[::-1]
        for exporter in order:
            started = time.perf_counter()
            body = _get(exporter.port, "/metrics")
            exporter.scrape_seconds.append(time.perf_counter() - started)
            exporter.collect_seconds.append(
                _sample_value(body, exporter.duration_prefix)
            )
            if round_index == scrapes - 1:
                _count_series(exporter, body, mount_label)
    for exporter in exporters:
        exporter.cpu_seconds = _cpu_seconds(exporter.pid) - cpu_before[exporter.name]


def _sample_value(body: bytes, prefix: bytes) -> float:
    start = body.find(b"\n" + prefix)
    if start < 0:
        raise RuntimeError(f"no sample {prefix.decode().strip()} in the scrape")
    start += 1 + len(prefix)
    return float(body[start : body.index(b"\n", start)])


def _count_series(exporter: Exporter, body: bytes, mount_label: bytes) -> None:
    lines = [line for line in body.split(b"\n") if line and not line.startswith(b"#")]
    sizes = [line for line in lines if line.startswith(exporter.size_metric)]
    exporter.series = len(sizes)
    exporter.bench_series = sum(1 for line in sizes if mount_label in line)
    exporter.samples = len(lines)
    exporter.body_bytes = len(body)


def _cpu_seconds(pid: int) -> float:
    # utime and stime are fields 14 and 15 of proc(5)'s /proc/PID/stat,
    # counted after the ")" that ends the command name.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _memory_kib(pid: int) -> dict[str, int]:
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0])
    return memory


def _check(exporters: list[Exporter], mount_count: int) -> list[str]:
    problems = []
    for exporter in exporters:
        if exporter.series != mount_count or exporter.bench_series != mount_count:
            problems.append(
                f"{exporter.name} returned {exporter.series} filesystem series "
                f"({exporter.bench_series} of the benchmark's mounts), "
                f"expected {mount_count}; the two did not measure the same work"
            )
    return problems


def _print_table(
    exporters: list[Exporter],
    memory: dict[str, dict[str, int]],
    mount_count: int,
    scrapes: int,
    warmup: int,
) -> None:
    ours, node = exporters
    print(
        f"{mount_count} tmpfs mounts, {scrapes} scrapes of each exporter in "
        f"alternation after {warmup} warm-up scrapes each, "
        f"{os.cpu_count()} CPUs, node_exporter {_node_version()}"
    )
    # Other work on the machine shows up in the tails first.
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average after the scrapes (1, 5, 15 min): {' '.join(load)}")
    print()
    print("| | webpaas-disk-exporter | node_exporter | ours / node_exporter |")
    print("|---|---:|---:|---:|")

    def row(label: str, measure: Callable[[Exporter], float], digits: int) -> None:
        mine, theirs = measure(ours), measure(node)
        ratio = f"{mine / theirs:.2f}" if theirs else "n/a"
        print(f"| {label} | {mine:.{digits}f} | {theirs:.{digits}f} | {ratio} |")

    for label, quantile in (("median", 50), ("p90", 90), ("p99", 99)):
        row(
            f"scrape {label}, ms",
            lambda e, q=quantile: _percentile(e.scrape_seconds, q) * 1000,
            2,
        )
    row("collection median (own metric), ms", _median_ms, 2)
    row("process CPU per scrape, ms", lambda e: e.cpu_seconds / scrapes * 1000, 2)
    row("filesystem series (size_bytes)", lambda e: e.series, 0)
    row("samples in the response", lambda e: e.samples, 0)
    row("response size, kB", lambda e: e.body_bytes / 1000, 0)
    row("VmRSS after start, MiB", lambda e: e.start_rss_kib / 1024, 1)
    row("VmRSS after the scrapes, MiB", lambda e: memory[e.name]["VmRSS"] / 1024, 1)
    row("VmHWM (peak RSS), MiB", lambda e: memory[e.name]["VmHWM"] / 1024, 1)
    print()

    for line in _verdicts(ours, node, memory[ours.name]):
        print(line)


def _verdicts(ours: Exporter, node: Exporter, memory: dict[str, int]) -> Iterator[str]:
    for label, quantile in (("median", 50), ("p99", 99)):
        mine = _percentile(ours.scrape_seconds, quantile)
        theirs = _percentile(node.scrape_seconds, quantile)
        verdict = "met" if mine <= theirs else "missed"
        yield f"goal scrape {label} no worse than node_exporter: {verdict}"
    peak = memory["VmHWM"] * 1024
    verdict = "met" if peak < MEMORY_GOAL_BYTES else "missed"
    yield f"goal peak resident memory under 40 MB (38.1 MiB): {verdict}"


def _percentile(values: list[float], percent: int) -> float:
    # "inclusive" keeps every percentile within the measured range, which
    # the default method does not for a sample as small as a smoke run's.
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _median_ms(exporter: Exporter) -> float:
    return statistics.median(exporter.collect_seconds) * 1000


def _node_version() -> str:
    output = subprocess.run(
        [NODE_EXPORTER, "--version"], capture_output=True, text=True, check=True
    )
    first = (output.stdout or output.stderr).split("\n", 1)[0]
    return first.split("version", 1)[-1].split("(", 1)[0].strip()


if __name__ == "__main__":
    sys.exit(main())
