"""Options shared by the admin commands, and secrets read from files or stdin.

`admin_options` gives a command ``--api-url``, ``--admin-token`` and
``--admin-token-file`` and hands it a ready `AdminClient`, so that later
admin commands get the same options and error handling by adding one
decorator.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
import httpx
from click.core import ParameterSource

from bridge.cli.api import API_PREFIX, AdminClient

DEFAULT_API_URL = "http://127.0.0.1:9847"

Command = TypeVar("Command", bound=Callable[..., Any])

format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format: an aligned table to read, or the API's JSON for scripts.",
)

_ADMIN_OPTIONS = (
    click.option(
        "--api-url",
        envvar="WEBPAAS_API_URL",
        show_envvar=True,
        default=DEFAULT_API_URL,
        show_default=True,
        help="Base URL of webpaas-bridge; the admin API is under /api/v1 there.",
    ),
    click.option(
        "--admin-token",
        envvar="WEBPAAS_ADMIN_TOKEN",
        show_envvar=True,
        help=(
            "Admin token that the bridge expects (its WEBPAAS_ADMIN_TOKEN). "
            "A value on the command line shows in the process list and shell "
            "history, so prefer the variable or --admin-token-file."
        ),
    ),
    click.option(
        "--admin-token-file",
        envvar="WEBPAAS_ADMIN_TOKEN_FILE",
        show_envvar=True,
        type=click.Path(dir_okay=False, allow_dash=True),
        help="File whose content is the admin token; '-' reads it from stdin.",
    ),
)


def admin_options(command: Command) -> Command:
    """Add the bridge options to a command and pass it ``client: AdminClient``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        api_url: str,
        admin_token: str | None,
        admin_token_file: str | None,
        **kwargs: Any,
    ) -> Any:
        context = click.get_current_context()
        token, token_source = _admin_token(context, admin_token, admin_token_file)
        client = AdminClient(_normalize_api_url(api_url), token, token_source)
        try:
            return command(*args, client=client, **kwargs)
        finally:
            client.close()

    for option in reversed(_ADMIN_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def _admin_token(
    context: click.Context, token: str | None, token_file: str | None
) -> tuple[str | None, str]:
    """Pick the admin token and name its source: command line first.

    A missing token is reported by the first request, so that a usage error
    in the same command line is reported first.
    """
    token_source = context.get_parameter_source("admin_token")
    file_source = context.get_parameter_source("admin_token_file")
    if token_source is ParameterSource.COMMANDLINE:
        if file_source is ParameterSource.COMMANDLINE:
            raise click.UsageError("give --admin-token or --admin-token-file, not both")
        token_file = None
    elif file_source is ParameterSource.COMMANDLINE:
        token = None

    if token is not None:
        where = (
            "--admin-token"
            if token_source is ParameterSource.COMMANDLINE
            else "WEBPAAS_ADMIN_TOKEN"
        )
        return token or None, where
    if token_file is not None:
        option = (
            "--admin-token-file"
            if file_source is ParameterSource.COMMANDLINE
            else "WEBPAAS_ADMIN_TOKEN_FILE"
        )
        return read_secret_file(token_file, option), f"{option} {token_file!r}"
    return None, "--admin-token"


def _normalize_api_url(value: str) -> str:
    """Check that ``value`` is an http(s) URL and drop a trailing /api/v1."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise click.BadParameter(
            f"{value!r} is not an http or https URL; for example {DEFAULT_API_URL}",
            param_hint="--api-url",
        )
    if url.userinfo:
        # Error messages quote the URL, so it must not carry a password.
        raise click.BadParameter(
            "must not contain a user or password; the admin token authenticates",
            param_hint="--api-url",
        )
    text = str(url).rstrip("/")
    return text.removesuffix(API_PREFIX)


def secret_value(
    value: str | None, path: str | None, option: str, file_option: str
) -> str | None:
    """Return a secret given either inline or as a file; never both."""
    if value is not None and path is not None:
        raise click.UsageError(f"give {option} or {file_option}, not both")
    if path is not None:
        return read_secret_file(path, file_option)
    return value


def read_secret_file(path: str, option: str) -> str:
    """Read a secret from ``path`` ('-' for stdin) without its line ending.

    Errors name the option and the path, never the content.
    """
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise click.BadParameter(
            f"cannot read {path!r}: {reason}", param_hint=option
        ) from None

    secret = text.strip()
    if not secret:
        raise click.BadParameter(f"{path!r} is empty", param_hint=option)
    return secret
