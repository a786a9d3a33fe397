"""The ``webpaas`` command: rules, integrations and the delivery outbox."""

from __future__ import annotations

import click

from bridge.cli.delivery_commands import deliveries_list, deliveries_retry
from bridge.cli.integration_commands import (
    integration_add,
    integration_delete,
    integration_get,
    integration_list,
    integration_update,
    integration_validate,
)
from bridge.cli.key_command import key_generate
from bridge.cli.rules_command import rules_render


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Manage webpaas-health: alert rules, integrations and deliveries."""


main.add_command(rules_render, "rules:render")
main.add_command(integration_add, "integration:add")
main.add_command(integration_list, "integration:list")
main.add_command(integration_get, "integration:get")
main.add_command(integration_update, "integration:update")
main.add_command(integration_delete, "integration:delete")
main.add_command(integration_validate, "integration:validate")
main.add_command(deliveries_list, "deliveries:list")
main.add_command(deliveries_retry, "deliveries:retry")
main.add_command(key_generate, "key:generate")
