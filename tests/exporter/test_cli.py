"""End-to-end tests of the webpaas-disk-exporter process and its helpers."""

from __future__ import annotations

import gc
import math
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import require_binary
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import (
    DEFAULT_LISTEN,
    _GarbageCollectorPause,
    main,
    make_app,
    parse_listen,
)
from exporter.collector import DiskCollector
from exporter.config import parse_config
from exporter.errors import ConfigError
from exporter.statvfs import StatvfsProber

EXPORTER = Path(sys.executable).with_name("webpaas-disk-exporter")
Start = Callable[..., tuple[subprocess.Popen[str], str]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exporter exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    pytest.fail(f"exporter did not serve {url} within 15 s")


@pytest.fixture
def start_exporter() -> Iterator[Start]:
    """Return a function that starts the exporter; every process is stopped after."""
    processes: list[subprocess.Popen[str]] = []

    def start(*args: str) -> tuple[subprocess.Popen[str], str]:
        if not EXPORTER.exists():
            pytest.fail(f"{EXPORTER} not found; install the project with pip -e .")
        listen = f"127.0.0.1:{free_port()}"
        process = subprocess.Popen(
            [str(EXPORTER), "--listen", listen, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        url = f"http://{listen}"
        wait_until_serving(process, url)
        return process, url

    yield start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(
        "labels:\n"
        "  project: shop\n"
        "services:\n"
        "  - name: web\n"
        f"    paths: [{tmp_path}]\n",
        encoding="utf-8",
    )
    return path


def test_live_scrape_passes_promtool(start_exporter: Start, config_file: Path) -> None:
    promtool = require_binary("promtool")
    _, url = start_exporter("--config", str(config_file))

    response = httpx.get(f"{url}/metrics", timeout=10)
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=response.text,
        capture_output=True,
        text=True,
        check=False,
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == ""


def test_without_config_discovers_mounts(start_exporter: Start) -> None:
    promtool = require_binary("promtool")
    _, url = start_exporter()

    page = httpx.get(f"{url}/", timeout=10)
    metrics = httpx.get(f"{url}/metrics", timeout=10)
    check = subprocess.run(
        [promtool, "check", "metrics"],
        input=metrics.text,
        capture_output=True,
        text=True,
        check=False,
    )

    assert page.status_code == 200
    assert "Mount discovery: on, service label host." in page.text
    assert metrics.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    roots = [
        sample
        for sample in families["webpaas_disk_error"].samples
        if sample.labels["mountpoint"] == "/"
    ]
    assert [sample.labels["service"] for sample in roots] == ["host"]
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout + check.stderr == ""


def test_live_scrape_has_service_and_no_nan(
    start_exporter: Start, config_file: Path, tmp_path: Path
) -> None:
    _, url = start_exporter("--config", str(config_file))

    text = httpx.get(f"{url}/metrics", timeout=10).text

    families = {family.name: family for family in text_string_to_metric_families(text)}
    errors = families["webpaas_disk_error"].samples
    web = [sample for sample in errors if sample.labels["service"] == "web"]
    assert len(web) == 1
    assert web[0].labels["mountpoint"] == str(tmp_path)
    assert web[0].labels["project"] == "shop"
    assert web[0].value == 0
    assert "webpaas_disk_collect_duration_seconds" in families
    values = [s.value for family in families.values() for s in family.samples]
    assert all(math.isfinite(value) for value in values)
    assert "NaN" not in text


def test_landing_page_links_metrics(start_exporter: Start, config_file: Path) -> None:
    _, url = start_exporter("--config", str(config_file))

    response = httpx.get(f"{url}/", timeout=10)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<a href="/metrics">' in response.text
    assert "<li>web: " in response.text


def test_unknown_path_is_404(start_exporter: Start) -> None:
    _, url = start_exporter()

    response = httpx.get(f"{url}/favicon.ico", timeout=10)

    assert response.status_code == 404


def test_sigterm_stops_with_status_0(start_exporter: Start) -> None:
    process, _ = start_exporter()

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0
    assert "stopping on SIGTERM" in stderr


def test_invalid_config_exits_2_naming_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("labels:\n  fstype: x\n", encoding="utf-8")

    result = subprocess.run(
        [str(EXPORTER), "--config", str(path), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "labels.fstype:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_options() -> None:
    result = subprocess.run(
        [str(EXPORTER), "--help"], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0
    assert result.stdout.startswith("Usage: webpaas-disk-exporter")
    assert "--config FILE" in result.stdout
    assert "default 127.0.0.1:9846" in result.stdout


def test_main_rejects_invalid_listen(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["--listen", "localhost"])

    assert status == 2
    assert "--listen: invalid address 'localhost'" in capsys.readouterr().err


def test_main_rejects_port_in_use(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        status = main(["--listen", f"127.0.0.1:{port}"])

    assert status == 2
    assert f"--listen: cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (DEFAULT_LISTEN, ("127.0.0.1", 9846)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9846", ("::1", 9846)),
        ("localhost:0", ("localhost", 0)),
    ],
)
def test_parse_listen(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9846", ":9846", "host:", "host:http", "h:70000"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match="--listen: invalid address"):
        parse_listen(value)


def test_metrics_scrape_creates_no_reference_cycles(tmp_path: Path) -> None:
    # The garbage collector is off during a scrape, so a cycle created there
    # would stay in memory until the next collection.
    config = parse_config(
        {"services": [{"name": "web", "paths": [str(tmp_path), "/nonexistent"]}]}
    )
    prober = StatvfsProber()
    app = make_app(DiskCollector(config, prober), config)
    statuses: list[str] = []

    def scrape() -> bytes:
        return b"".join(
            app(
                {"PATH_INFO": "/metrics"},
                lambda status, headers: statuses.append(status),
            )
        )

    try:
        scrape()
        gc.collect()
        gc.disable()
        body = scrape()
        cycles = gc.collect()
    finally:
        gc.enable()
        prober.close()

    assert statuses == ["200 OK", "200 OK"]
    assert b'webpaas_disk_error{service="web",mountpoint="/nonexistent"' in body
    assert cycles == 0


def test_gc_pause_resumes_after_last_scrape() -> None:
    pause = _GarbageCollectorPause()
    assert gc.isenabled()

    with pause:
        assert not gc.isenabled()
        with pause:
            assert not gc.isenabled()
        assert not gc.isenabled()

    assert gc.isenabled()
