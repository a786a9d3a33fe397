"""``webpaas key:generate``: print a new shared key for signed webhooks."""

from __future__ import annotations

import click

from bridge.validation import generate_shared_key


@click.command("key:generate")
def key_generate() -> None:
    """Print a new random webhook shared key.

    The key is base64url text of 32 random bytes, the minimum that
    receivers using jwcrypto accept for HS256. Give it to the bridge as the
    --shared-key (or --shared-key-file) of a health.webhook integration,
    and to the receiver that checks the X-JWS-Signature header.
    """
    click.echo(generate_shared_key())
