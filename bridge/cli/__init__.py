"""The ``webpaas`` command: rule rendering and integration management."""

from __future__ import annotations

import click

from bridge.cli.rules_command import rules_render


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Manage webpaas-health: render alert rules, manage integrations."""


main.add_command(rules_render, "rules:render")
