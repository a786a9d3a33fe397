"""Tests of ``webpaas rules:render`` through click's CliRunner."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from rules.render import RuleParams, Source, output_filename, render_rules


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_render_prints_webpaas_by_default(runner: CliRunner) -> None:
    result = runner.invoke(main, ["rules:render"])

    assert result.exit_code == 0, result.output
    assert result.stdout == render_rules(RuleParams())


def test_render_prints_node_source(runner: CliRunner) -> None:
    result = runner.invoke(main, ["rules:render", "--source", "node"])

    assert result.exit_code == 0, result.output
    assert result.stdout == render_rules(RuleParams(source=Source.NODE))


def test_render_output_dir_writes_both(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main,
        ["rules:render", "--output-dir", str(tmp_path), "--warning", "25"],
    )

    assert result.exit_code == 0, result.output
    for source in Source:
        written = (tmp_path / output_filename(source)).read_text(encoding="utf-8")
        expected = render_rules(RuleParams(source=source, warning=Decimal(25)))
        assert written == expected
        assert f"Wrote {tmp_path / output_filename(source)}" in result.stdout


def test_render_output_dir_one_source(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        main, ["rules:render", "--output-dir", str(tmp_path), "--source", "node"]
    )

    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "node-exporter-disk.rules.yml"
    ]


def test_render_output_file_with_all_options(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "custom.yml"

    result = runner.invoke(
        main,
        [
            "rules:render",
            "--output",
            str(target),
            "--warning=25",
            "--critical=12.5",
            "--warning-bytes=4GiB",
            "--critical-bytes",
            "500MiB",
            "--clear-margin",
            "1.5",
            "--runbook-base-url",
            "https://git.example.com/health",
        ],
    )

    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == render_rules(
        RuleParams(
            warning=Decimal(25),
            critical=Decimal("12.5"),
            warning_bytes=4 * 1024**3,
            critical_bytes=500 * 1024**2,
            clear_margin=Decimal("1.5"),
            runbook_base_url="https://git.example.com/health",
        )
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        # A value that is not a number.
        (["--warning", "abc"], "invalid percentage 'abc' for --warning"),
        # Critical at or above warning.
        (["--critical", "30"], "--critical 30 must be above 0 and below --warning 20"),
        # A size with an unknown unit.
        (["--warning-bytes", "4XB", "--critical-bytes", "2GiB"], "unknown unit 'XB'"),
        # Half of the bytes policy.
        (["--critical-bytes", "2GiB"], "give both or neither"),
        # A margin that never clears.
        (["--clear-margin", "85"], "use a margin below 80"),
        # Both output modes at once.
        (["--output", "a.yml", "--output-dir", "b"], "exclude each other"),
    ],
)
def test_render_invalid_value_one_line_error(
    runner: CliRunner, arguments: list[str], message: str
) -> None:
    result = runner.invoke(main, ["rules:render", *arguments])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr


def test_render_unknown_source_is_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["rules:render", "--source", "collectd"])

    assert result.exit_code == 2
    assert "'collectd' is not one of 'webpaas', 'node'" in result.stderr


def test_render_unwritable_output(runner: CliRunner, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    result = runner.invoke(
        main, ["rules:render", "--output", str(blocker / "rules.yml")]
    )

    assert result.exit_code == 1
    assert f"failed to write {blocker / 'rules.yml'}" in result.stderr
