"""Smoke run of bench/exporter_scrape.py, which checks that it prints its figures.

The run is tiny (20 mounts, 5 scrapes), so its timings mean nothing and no
test checks them. The full benchmark is run by hand and recorded in
docs/benchmarks.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

SCRIPT = Path(__file__).parents[2] / "bench" / "exporter_scrape.py"


def test_exporter_bench_smoke_prints_figures() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("20 tmpfs mounts, 5 scrapes of each exporter")
    for label in ("median", "p90", "p99"):
        assert re.search(rf"^\| scrape {label}, ms \| [\d.]+ \| [\d.]+ \| ", out, re.M)
    # Both exporters saw exactly the benchmark's mounts, so they did the same work.
    assert "| filesystem series (size_bytes) | 20 | 20 | 1.00 |" in out
    assert re.search(r"^\| VmHWM \(peak RSS\), MiB \| [\d.]+ \| [\d.]+ \| ", out, re.M)
    assert "goal peak resident memory under 40 MB" in out
    assert "INVALID" not in out
