"""The soak script in a short run, and its checker on made-up arrivals.

``bench/soak.py`` SIGKILLs a real bridge while messages stream in; CI runs
five kills of it here. The full run (100 kills) is in docs/reliability.md.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bridge.model import EventType

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "soak.py"
WARNING = EventType.WARNING
CRITICAL = EventType.CRITICAL
ALL_CLEAR = EventType.ALL_CLEAR


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("webpaas_soak", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["webpaas_soak"] = module
    spec.loader.exec_module(module)
    return module


soak = load_soak()


@pytest.mark.slow
def test_soak_five_kills(tmp_path: Path) -> None:
    """Five SIGKILLs while messages stream in lose and reorder nothing."""
    summary_path = tmp_path / "summary.json"

    completed = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--cycles",
            "5",
            "--disks",
            "12",
            "--max-run-seconds",
            "1",
            "--rate",
            "10",
            "--json",
            str(summary_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert completed.returncode == 0, (
        completed.stdout[-4000:] + completed.stderr[-4000:]
    )
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    assert summary["problems"] == []
    assert summary["kills"] == 5
    assert summary["messages"] > 0
    assert summary["level_changes"] > 0
    expected = summary["expected_notifications_per_target"]
    for name in ("slack", "pagerduty", "webhook"):
        assert summary["targets"][name]["notifications"] >= expected


def arrivals(*items: tuple[str, EventType, str | None]) -> list[object]:
    return [soak.Arrival(disk, kind, event_id) for disk, kind, event_id in items]


def test_checker_accepts_same_id_duplicate() -> None:
    got = arrivals(
        ("d1", WARNING, "e1"), ("d1", WARNING, "e1"), ("d1", ALL_CLEAR, "e2")
    )

    problems, duplicates = soak.check_target(
        "webhook", got, {"d1": [WARNING, ALL_CLEAR]}
    )

    assert problems == []
    assert duplicates == 1


@pytest.mark.parametrize(
    ("got", "problem"),
    [
        # The all-clear never arrived.
        ([("d1", WARNING, "e1")], "got ['warning'], expected ['warning', 'all_clear']"),
        # The all-clear overtook its warning.
        (
            [("d1", ALL_CLEAR, "e2"), ("d1", WARNING, "e1")],
            "got ['all_clear', 'warning']",
        ),
        # A second event was made for one transition.
        (
            [("d1", WARNING, "e1"), ("d1", WARNING, "e9"), ("d1", ALL_CLEAR, "e2")],
            "warning twice with event ids e1 and e9",
        ),
        # A notification for a disk that was never sent.
        (
            [("d1", WARNING, "e1"), ("d1", ALL_CLEAR, "e2"), ("d7", CRITICAL, "e3")],
            "unknown disk d7",
        ),
    ],
)
def test_checker_reports_problem(
    got: list[tuple[str, EventType, str | None]], problem: str
) -> None:
    problems, _ = soak.check_target(
        "webhook", arrivals(*got), {"d1": [WARNING, ALL_CLEAR]}
    )

    assert len(problems) == 1
    assert problem in problems[0]
