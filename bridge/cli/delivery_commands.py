"""``webpaas deliveries:*``: show the bridge's outbox and replay dead letters.

A dead letter is a notification that the bridge gave up on: its target
rejected it for good (a Slack ``channel_not_found``, a webhook's HTTP 400)
or kept failing until the delivery's maximum age. Once the cause is fixed,
``deliveries:retry`` makes it pending again and the bridge sends it at once.
"""

from __future__ import annotations

import click

from bridge.cli.api import AdminClient
from bridge.cli.options import admin_options, format_option
from bridge.cli.output import echo_delivery, echo_delivery_list, echo_json

DEAD = "dead"
# The bridge returns at most this many deliveries per request.
MAX_LIMIT = 1000


@click.command("deliveries:list")
@click.option(
    "--failed",
    is_flag=True,
    help="List only dead letters: deliveries that the bridge gave up on.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=100,
    show_default=True,
    help="Maximum number of deliveries to list, newest first.",
)
@format_option
@admin_options
def deliveries_list(
    client: AdminClient, failed: bool, limit: int, output_format: str
) -> None:
    """List the bridge's deliveries, newest first.

    Each row is one event on its way to one integration, with its status
    (pending, delivered or dead), the attempts so far and the last error,
    which for a dead letter is the reason the bridge gave up.
    """
    params = {"limit": str(limit)}
    if failed:
        params["status"] = DEAD
    answer = client.request("GET", "/deliveries", params=params)
    if output_format == "json":
        echo_json(answer)
    else:
        echo_delivery_list(answer["deliveries"], dead_only=failed)


@click.command("deliveries:retry")
@click.argument("delivery_id", metavar="ID", type=click.IntRange(1, 2**63 - 1))
@format_option
@admin_options
def deliveries_retry(client: AdminClient, delivery_id: int, output_format: str) -> None:
    """Send a dead letter again: make it pending and due now.

    Fix the cause first (the integration with `webpaas integration:update`,
    or the receiver), because a delivery that fails for good again becomes
    a dead letter again. A retried notification is sent even when later
    notifications for its disk were already delivered. Exits 6 when ID is
    not a dead letter.
    """
    answer = client.request(
        "POST", f"/deliveries/{delivery_id}/retry", delivery_id=str(delivery_id)
    )
    if output_format == "json":
        echo_json(answer)
        return
    delivery = answer["delivery"]
    click.echo(
        f"delivery {delivery['id']} is pending again; the bridge sends it now to "
        f"integration {delivery['integration_id']}"
    )
    echo_delivery(delivery)
