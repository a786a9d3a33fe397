"""``webpaas integration:*``: manage the bridge's integrations over its admin API.

Secrets given as options go to the bridge and nowhere else: every line
these commands print comes from the API's public view. ``--token-file``,
``--routing-key-file`` and ``--shared-key-file`` (``-`` for stdin) keep a
secret out of the process list and shell history.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import click

from bridge.cli.api import EXIT_INVALID, AdminClient
from bridge.cli.options import admin_options, format_option, secret_value
from bridge.cli.output import (
    echo_integration,
    echo_integration_list,
    echo_json,
    echo_problems,
    echo_validation,
)
from bridge.integrations import REQUIRED_FIELDS, SECRET_FIELDS, SETTING_FIELDS, TYPES

# Every id the bridge can hold: 12 hexadecimal characters for integrations
# added through the API, and this rule for those in the config file. An id
# outside it, such as ".." or one with "/", would reach another route.
_INTEGRATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# Option spelling of each API field.
OPTION_NAMES = {
    "channel": "--channel",
    "url": "--url",
    "token": "--token",
    "routing_key": "--routing-key",
    "shared_key": "--shared-key",
}


def _field_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add one option per integration field, plus a file option per secret."""
    options = [
        click.option("--channel", help="Slack channel: '#name' or a channel id."),
        click.option("--url", help="Webhook URL (http or https) that receives events."),
        click.option("--token", help="Slack bot (xoxb-) or user (xoxp-) token."),
        click.option(
            "--token-file",
            type=click.Path(dir_okay=False, allow_dash=True),
            help="File holding the Slack token; '-' reads stdin.",
        ),
        click.option("--routing-key", help="PagerDuty routing key (32 characters)."),
        click.option(
            "--routing-key-file",
            type=click.Path(dir_okay=False, allow_dash=True),
            help="File holding the PagerDuty routing key; '-' reads stdin.",
        ),
        click.option(
            "--shared-key",
            help=(
                "Webhook signing key: base64url of at least 32 bytes; "
                "`webpaas key:generate` prints one."
            ),
        ),
        click.option(
            "--shared-key-file",
            type=click.Path(dir_okay=False, allow_dash=True),
            help="File holding the webhook shared key; '-' reads stdin.",
        ),
        click.option(
            "--no-check",
            is_flag=True,
            help="Skip the live check (no test message); the format check still runs.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _fields_from_options(options: dict[str, Any]) -> dict[str, str]:
    """Collect the API fields given as options, reading secret files."""
    fields = {
        name: options[name] for name in ("channel", "url") if options[name] is not None
    }
    for name in ("token", "routing_key", "shared_key"):
        value = secret_value(
            options[name],
            options[f"{name}_file"],
            OPTION_NAMES[name],
            f"{OPTION_NAMES[name]}-file",
        )
        if value is not None:
            fields[name] = value
    return fields


@click.command("integration:add")
@click.option(
    "--type",
    "integration_type",
    type=click.Choice(TYPES),
    required=True,
    help="Kind of integration, which decides the options it needs.",
)
@_field_options
@format_option
@admin_options
def integration_add(
    client: AdminClient, integration_type: str, output_format: str, **options: Any
) -> None:
    """Add an integration; the bridge validates it first.

    \b
    health.slack      --token T --channel '#c'
    health.pagerduty  --routing-key K
    health.webhook    --url U [--shared-key K]

    An integration that fails the format check is not stored (exit 4). One
    that passes is stored, and the result of the live check is printed.
    """
    fields = _fields_from_options(options)
    _check_fields_for_type(integration_type, fields)

    answer = client.request(
        "POST",
        "/integrations",
        json_body={"type": integration_type, **fields},
        params=_check_params(options["no_check"]),
    )
    _echo_write("added", answer, output_format)


@click.command("integration:list")
@format_option
@admin_options
def integration_list(client: AdminClient, output_format: str) -> None:
    """List every integration.

    Integrations declared in the bridge's config file show source 'config'
    and are read-only.
    """
    answer = client.request("GET", "/integrations")
    if output_format == "json":
        echo_json(answer)
    else:
        echo_integration_list(answer["integrations"])


@click.command("integration:get")
@click.argument("integration_id", metavar="ID")
@format_option
@admin_options
def integration_get(
    client: AdminClient, integration_id: str, output_format: str
) -> None:
    """Show one integration.

    Secrets show only whether they are set and at most their last four
    characters.
    """
    answer = client.request(
        "GET",
        _integration_path(client, integration_id),
        integration_id=integration_id,
    )
    if output_format == "json":
        echo_json(answer)
    else:
        echo_integration(answer)


@click.command("integration:update")
@click.argument("integration_id", metavar="ID")
@_field_options
@click.option(
    "--clear-shared-key",
    is_flag=True,
    help="Remove the webhook shared key, so events go unsigned.",
)
@format_option
@admin_options
def integration_update(
    client: AdminClient,
    integration_id: str,
    clear_shared_key: bool,
    output_format: str,
    **options: Any,
) -> None:
    """Change the given fields of an integration.

    Fields that are not given keep their value, secrets included. The
    bridge validates the result as for integration:add.
    """
    fields: dict[str, str | None] = dict(_fields_from_options(options))
    if clear_shared_key:
        if "shared_key" in fields:
            raise click.UsageError("give --shared-key or --clear-shared-key, not both")
        fields["shared_key"] = None
    if not fields:
        raise click.UsageError(
            "give at least one field to change, for example --channel or --token"
        )

    answer = client.request(
        "PATCH",
        _integration_path(client, integration_id),
        json_body=fields,
        params=_check_params(options["no_check"]),
        integration_id=integration_id,
    )
    _echo_write("updated", answer, output_format)


@click.command("integration:delete")
@click.argument("integration_id", metavar="ID")
@admin_options
def integration_delete(client: AdminClient, integration_id: str) -> None:
    """Delete an integration added through the API."""
    client.request(
        "DELETE",
        _integration_path(client, integration_id),
        integration_id=integration_id,
    )
    click.echo(f"deleted integration {integration_id}")


@click.command("integration:validate")
@click.argument("integration_id", metavar="[ID]", required=False)
@format_option
@admin_options
def integration_validate(
    client: AdminClient, integration_id: str | None, output_format: str
) -> None:
    """Test one integration live, or all without ID.

    The live check sends test traffic: Slack auth.test and a test message,
    a PagerDuty test trigger and its resolve, a signed test event to a
    webhook. Exits 0 when everything is valid and 4 when anything is not,
    printing each problem as 'field: reason'.
    """
    if integration_id is None:
        answer = client.request("POST", "/integrations/validate")
        results = answer["results"]
    else:
        answer = client.request(
            "POST",
            _integration_path(client, integration_id, "/validate"),
            integration_id=integration_id,
        )
        results = [answer]

    if output_format == "json":
        echo_json(answer)
    elif not results:
        click.echo("no integrations to validate")
    else:
        for result in results:
            echo_validation(result)

    if not all(result["valid"] for result in results):
        click.get_current_context().exit(EXIT_INVALID)


def _check_fields_for_type(integration_type: str, fields: dict[str, str]) -> None:
    """Reject options that the type does not take, and missing required ones."""
    allowed = SETTING_FIELDS[integration_type] + SECRET_FIELDS[integration_type]
    accepted_options = ", ".join(OPTION_NAMES[name] for name in allowed)
    for name in fields:
        if name not in allowed:
            raise click.UsageError(
                f"{OPTION_NAMES[name]} does not apply to --type {integration_type}; "
                f"it takes {accepted_options}"
            )
    for name in REQUIRED_FIELDS[integration_type]:
        if name not in fields:
            option = OPTION_NAMES[name]
            file_hint = (
                f" (or {option}-file)"
                if name in SECRET_FIELDS[integration_type]
                else ""
            )
            raise click.UsageError(
                f"--type {integration_type} needs {option}{file_hint}"
            )


def _check_params(no_check: bool) -> dict[str, str] | None:
    return {"check": "false"} if no_check else None


def _integration_path(
    client: AdminClient, integration_id: str, suffix: str = ""
) -> str:
    """Return the API path of an integration, or raise for an impossible id."""
    if not _INTEGRATION_ID.fullmatch(integration_id):
        raise client.unknown_integration(integration_id)
    return f"/integrations/{quote(integration_id, safe='')}{suffix}"


def _echo_write(verb: str, answer: dict[str, Any], output_format: str) -> None:
    """Print the result of an add or update, warning when the live check failed."""
    if output_format == "json":
        echo_json(answer)
        return

    integration = answer["integration"]
    validation = answer["validation"]
    click.echo(f"{verb} integration {integration['id']} ({integration['type']})")
    if not validation["live"]:
        click.echo("live check: skipped")
    elif validation["valid"]:
        click.echo("live check: passed")
    else:
        click.echo("live check: failed")
        echo_problems(validation["problems"])
        click.echo(
            f"warning: the integration is stored but does not work yet; fix it "
            f"with `webpaas integration:update {integration['id']}` and check "
            f"again with `webpaas integration:validate {integration['id']}`",
            err=True,
        )
