"""Tests of ``webpaas`` behaviour that needs no bridge: help and key:generate."""

from __future__ import annotations

import base64

import click
import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.validation import MIN_SHARED_KEY_BYTES, shared_key_problem

ADMIN_COMMANDS = (
    "integration:add",
    "integration:list",
    "integration:get",
    "integration:update",
    "integration:delete",
    "integration:validate",
    "deliveries:list",
    "deliveries:retry",
)
READ_COMMANDS = (
    "integration:list",
    "integration:get",
    "integration:validate",
    "integration:add",
    "integration:update",
    "deliveries:list",
    "deliveries:retry",
)


@pytest.mark.parametrize("name", [*ADMIN_COMMANDS, "key:generate"])
def test_help_documents_every_option(name: str) -> None:
    command = main.commands[name]

    result = CliRunner().invoke(main, [name, "--help"])

    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: main {name} ")
    for parameter in command.params:
        if isinstance(parameter, click.Option):
            assert parameter.help, f"{name} {parameter.opts[0]} has no help text"
            assert parameter.opts[0] in result.stdout


@pytest.mark.parametrize("name", ADMIN_COMMANDS)
def test_admin_commands_take_bridge_options(name: str) -> None:
    options = {
        option for parameter in main.commands[name].params for option in parameter.opts
    }

    assert {"--api-url", "--admin-token", "--admin-token-file"} <= options


@pytest.mark.parametrize("name", READ_COMMANDS)
def test_read_commands_take_format(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"])

    assert "--format [table|json]" in result.stdout


def test_rules_render_still_registered() -> None:
    assert "rules:render" in main.commands


def test_key_generate_prints_valid_key() -> None:
    result = CliRunner().invoke(main, ["key:generate"])

    assert result.exit_code == 0
    key = result.stdout.strip()
    assert result.stdout == key + "\n"
    assert shared_key_problem(key) is None
    decoded = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    assert len(decoded) >= MIN_SHARED_KEY_BYTES
    assert "=" not in key


def test_key_generate_differs_each_time() -> None:
    keys = {CliRunner().invoke(main, ["key:generate"]).stdout for _ in range(5)}

    assert len(keys) == 5
