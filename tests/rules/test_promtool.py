"""Run promtool on the shipped rule files, their unit tests and the deploy config."""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import require_binary

from bridge.cli import main
from rules.render import RuleParams, Source, output_filename, render_rules

REPOSITORY = Path(__file__).resolve().parents[2]
RULES_DIR = REPOSITORY / "rules"
RULE_TESTS_DIR = RULES_DIR / "tests"
SHIPPED_RULE_FILES = sorted(RULES_DIR.glob("*.rules.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))

# Test files that need rules rendered with other options. Each is run
# against the output of `webpaas rules:render` with these arguments, written
# to a temporary directory laid out like rules/ so that its rule_files path
# "../webpaas-disk.rules.yml" resolves.
VARIANT_ARGUMENTS = {
    "webpaas-bytes-policy.test.yml": [
        "--source=webpaas",
        "--warning-bytes=4GiB",
        "--critical-bytes=2GiB",
    ],
    "webpaas-clear-margin.test.yml": ["--source=webpaas", "--clear-margin=2"],
    "node-exporter-bytes-policy.test.yml": [
        "--source=node",
        "--warning-bytes=4GiB",
        "--critical-bytes=2GiB",
    ],
    "node-exporter-exact-thresholds.test.yml": [
        "--source=node",
        "--warning=29",
        "--critical=7",
    ],
}


def _render_variant(arguments: list[str], directory: Path) -> None:
    result = CliRunner().invoke(
        main, ["rules:render", "--output-dir", str(directory), *arguments]
    )
    assert result.exit_code == 0, result.output


def _promtool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *map(str, arguments)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_rule_test_files_found() -> None:
    names = {path.name for path in RULE_TEST_FILES}

    assert names == {
        "node-exporter-bytes-policy.test.yml",
        "node-exporter-exact-thresholds.test.yml",
        "node-exporter.test.yml",
        "mixed-sources.test.yml",
        "webpaas-bytes-policy.test.yml",
        "webpaas-clear-margin.test.yml",
        "webpaas-missing-data.test.yml",
        "webpaas-readonly-services.test.yml",
        "webpaas-thresholds.test.yml",
    }


@pytest.mark.parametrize("test_file", RULE_TEST_FILES, ids=lambda path: path.name)
def test_promtool_rule_tests_pass(test_file: Path, tmp_path: Path) -> None:
    arguments = VARIANT_ARGUMENTS.get(test_file.name)
    if arguments is None:
        target = test_file
    else:
        _render_variant(arguments, tmp_path)
        (tmp_path / "tests").mkdir()
        target = tmp_path / "tests" / test_file.name
        shutil.copyfile(test_file, target)

    result = _promtool("test", "rules", target)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_shipped_rule_files_are_both_sources() -> None:
    names = [path.name for path in SHIPPED_RULE_FILES]

    assert names == sorted(output_filename(source) for source in Source)


@pytest.mark.parametrize("rule_file", SHIPPED_RULE_FILES, ids=lambda path: path.name)
def test_promtool_check_rules(rule_file: Path) -> None:
    result = _promtool("check", "rules", rule_file)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


@pytest.mark.parametrize(
    "params",
    [
        # Every option at once, for each source: the variants users render.
        RuleParams(
            source=source,
            warning=Decimal(25),
            critical=Decimal("12.5"),
            warning_bytes=5 * 1000**3,
            critical_bytes=500 * 1024**2,
            clear_margin=Decimal(3),
            runbook_base_url="https://git.example.com/webpaas-health/blob/main",
        )
        for source in Source
    ],
    ids=[source.value for source in Source],
)
def test_promtool_check_rendered_variant(params: RuleParams, tmp_path: Path) -> None:
    rule_file = tmp_path / output_filename(params.source)
    rule_file.write_text(render_rules(params))

    result = _promtool("check", "rules", rule_file)

    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_deploy_config() -> None:
    config = REPOSITORY / "deploy" / "prometheus" / "prometheus.yml"

    # promtool resolves rule_files relative to the config file, so checking
    # it in place also checks that the paths reach the shipped rules.
    result = _promtool("check", "config", config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout
    assert "SUCCESS: 3 rules found" in result.stdout
