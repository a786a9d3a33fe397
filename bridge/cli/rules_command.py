"""``webpaas rules:render``: placeholder until the renderer lands."""

from __future__ import annotations

import click


@click.command()
def rules_render() -> None:
    """Render the bundled alert rule files."""
    raise click.ClickException("rules:render is not implemented yet")
