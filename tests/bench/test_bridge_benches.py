"""Smoke runs of the bridge benchmarks: each prints its figures and exits 0.

Every script runs with ``--smoke`` (tiny sizes, a few seconds), so the
figures mean nothing and no test checks a speed; the tests keep the scripts
working. The full runs are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_binary

BENCH = Path(__file__).parents[2] / "bench"

# A figure: a number with an optional sign, decimals and unit.
NUMBER = r"[+-]?\d+(?:\.\d+)?"


def run_smoke(script: str) -> str:
    """Run ``bench/<script> --smoke`` and return its output, failing on exit != 0."""
    result = subprocess.run(
        [sys.executable, str(BENCH / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("# "), result.stdout
    assert re.search(r"^machine: nproc=\d+ cpu=", result.stdout, re.M), result.stdout
    assert re.search(r"^command: .*--smoke$", result.stdout, re.M), result.stdout
    return result.stdout


def goal_lines(output: str) -> list[str]:
    return re.findall(r"^goal .+: (?:met|MISSED) \(.+\)$", output, re.M)


@pytest.mark.slow
def test_ingest_smoke_prints_side_by_side() -> None:
    require_binary("wrk")

    output = run_smoke("ingest.py")

    for server in ("ceiling", "bridge"):
        figures = rf"\s+{NUMBER}" * 4
        row = rf"^{server}{figures}\s+0\s+0\s+{NUMBER}$"
        assert re.search(row, output, re.M), output
    assert re.search(r"^prom2teams(?::| )", output, re.M), output
    bound = rf"^without storage: .+ = at most \d+/s on one core, {NUMBER} of"
    assert re.search(bound, output, re.M), output
    assert len(goal_lines(output)) >= 3, output


@pytest.mark.slow
def test_storm_smoke_delivers_every_event() -> None:
    output = run_smoke("storm.py")

    assert re.search(r"^response: [\d.]+ s, status 200, transitions 200$", output, re.M)
    assert re.search(r"^deliveries: 200 of 200 in ", output, re.M), output
    assert len(goal_lines(output)) == 2, output


@pytest.mark.slow
def test_hop_smoke_pairs_every_alert() -> None:
    require_binary("prometheus-alertmanager")

    output = run_smoke("hop.py")

    assert "alerts: 5 sent, 5 arrived both ways" in output, output
    assert re.search(rf"^added by the bridge\s+{NUMBER}\s+", output, re.M), output
    assert len(goal_lines(output)) == 1, output


@pytest.mark.slow
def test_memory_smoke_prints_slope() -> None:
    output = run_smoke("memory.py")

    phases = re.findall(rf"^\s+(\d+)\s+\d+\s+\d+\s+{NUMBER}\s+{NUMBER}$", output, re.M)
    assert phases == [str(phase) for phase in range(11)], output
    assert re.search(rf"slope {NUMBER} MiB per 100,000 alerts", output), output
    assert len(goal_lines(output)) == 1, output


def test_http_client_smoke_prints_both_transports() -> None:
    output = run_smoke("http_client.py")

    for transport in ("httpx", "aiohttp"):
        assert re.search(rf"^{transport}\s+{NUMBER}\s+{NUMBER}$", output, re.M), output
    assert re.search(rf"^CPU per request, .+: {NUMBER}$", output, re.M), output
    assert len(goal_lines(output)) == 1, output
