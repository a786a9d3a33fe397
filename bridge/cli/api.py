"""Client for the bridge's admin API, and the errors every admin command raises.

Each command that talks to webpaas-bridge builds one `AdminClient` and lets
its errors propagate. Every error is a `click.ClickException`, so click
catches it once, prints one line to stderr and exits with the code of its
class:

    CliError                 1  unexpected response or error
    ├── BridgeUnavailable    3  connection failed, timed out, or store down
    ├── InvalidIntegration   4  validation found problems
    ├── CredentialError      5  admin token missing or rejected
    ├── UnknownIntegration   6  no integration has the id
    ├── UnknownDeadLetter    6  no dead letter has the id
    └── ReadOnlyIntegration  7  declared in the config file

Usage errors (a bad or missing option) exit with click's code 2.
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any

import click
import httpx

# httpx logs every request URL at INFO, and a webhook URL may carry a
# credential in its query. Keep httpx and its transport quiet whatever
# logging configuration a caller sets up.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

API_PREFIX = "/api/v1"

# A live check of every integration runs the checks in parallel, each
# bounded by the bridge at 20 s, so a minute leaves room for a slow target.
REQUEST_TIMEOUT = httpx.Timeout(60.0, connect=5.0)

EXIT_UNEXPECTED = 1
EXIT_UNAVAILABLE = 3
EXIT_INVALID = 4
EXIT_CREDENTIAL = 5
EXIT_NOT_FOUND = 6
EXIT_READ_ONLY = 7


class CliError(click.ClickException):
    """Base of the admin commands' errors; the message is one line."""

    exit_code = EXIT_UNEXPECTED


class BridgeUnavailable(CliError):
    """The bridge could not be reached, timed out, or cannot use its store."""

    exit_code = EXIT_UNAVAILABLE


class InvalidIntegration(CliError):
    """The bridge rejected an integration; each problem prints as ``field: reason``."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, problems: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems

    def show(self, file: IO[Any] | None = None) -> None:
        super().show(file)
        for problem in self.problems:
            click.echo(f"{problem['field']}: {problem['reason']}", err=True)


class CredentialError(CliError):
    """The admin token is missing, or the bridge rejected it."""

    exit_code = EXIT_CREDENTIAL


class UnknownIntegration(CliError):
    """No integration has the requested id."""

    exit_code = EXIT_NOT_FOUND


class UnknownDeadLetter(CliError):
    """No dead letter has the requested delivery id."""

    exit_code = EXIT_NOT_FOUND


class ReadOnlyIntegration(CliError):
    """The integration is declared in the config file and cannot change here."""

    exit_code = EXIT_READ_ONLY


class AdminClient:
    """Sends admin API requests and turns every failure into a `CliError`."""

    def __init__(
        self,
        api_url: str,
        admin_token: str | None,
        token_source: str,
    ) -> None:
        """Open an HTTP client for the bridge's admin API.

        Args:
            api_url: the bridge's base URL, without ``/api/v1``.
            admin_token: the admin token, or None when none was given.
            token_source: where the token came from (an option or a
                variable), for the message when the bridge rejects it.
        """
        self.api_url = api_url
        self.token_source = token_source
        self._admin_token = admin_token
        self._http = httpx.Client(
            base_url=api_url + API_PREFIX, timeout=REQUEST_TIMEOUT
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        integration_id: str | None = None,
        delivery_id: str | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON body (None for 204).

        ``integration_id`` names the integration in a 404 or 409 message,
        ``delivery_id`` the dead letter in a 404 message.
        """
        if not self._admin_token:
            raise CredentialError(
                "no admin token given; set --admin-token-file, "
                "WEBPAAS_ADMIN_TOKEN or --admin-token to the bridge's admin token"
            )
        headers = {"Authorization": f"Bearer {self._admin_token}"}
        try:
            response = self._http.request(
                method, path, json=json_body, params=params, headers=headers
            )
        except httpx.TimeoutException:
            raise BridgeUnavailable(
                f"webpaas-bridge at {self.api_url} did not respond within "
                f"{REQUEST_TIMEOUT.read:g} s; check that it is running and "
                "not overloaded"
            ) from None
        except httpx.TransportError as error:
            raise BridgeUnavailable(
                f"cannot reach webpaas-bridge at {self.api_url} "
                f"({_transport_reason(error)}); is webpaas-bridge running? "
                "set --api-url or WEBPAAS_API_URL"
            ) from None

        if response.status_code == 204:
            return None
        body = _decode(response, self.api_url)
        if response.is_success:
            return body
        raise self._error_for(response.status_code, body, integration_id, delivery_id)

    def unknown_integration(self, integration_id: str) -> UnknownIntegration:
        """Build the error for an integration id that the bridge does not have."""
        return UnknownIntegration(
            f"integration {integration_id!r} not found at {self.api_url}; "
            "list the ids with `webpaas integration:list`"
        )

    def _error_for(
        self,
        status: int,
        body: dict[str, Any],
        integration_id: str | None,
        delivery_id: str | None,
    ) -> CliError:
        message = str(body.get("error", "no error message"))
        if status == 401:
            return CredentialError(
                f"webpaas-bridge at {self.api_url} requires the admin token; "
                "set --admin-token, --admin-token-file or WEBPAAS_ADMIN_TOKEN"
            )
        if status == 403:
            return CredentialError(
                f"webpaas-bridge at {self.api_url} rejected the admin token from "
                f"{self.token_source}; use the value of the bridge's "
                "WEBPAAS_ADMIN_TOKEN, not the Alertmanager token"
            )
        if status == 404 and integration_id is not None:
            return self.unknown_integration(integration_id)
        if status == 404 and delivery_id is not None:
            return UnknownDeadLetter(
                f"no dead letter has the id {delivery_id!r} at {self.api_url}; "
                "list the dead letters with `webpaas deliveries:list --failed`"
            )
        if status == 409 and delivery_id is not None:
            return CliError(
                f"webpaas-bridge at {self.api_url} kept dead letter "
                f"{delivery_id!r}: {message}"
            )
        if status == 409 and integration_id is not None:
            return ReadOnlyIntegration(
                f"integration {integration_id!r} is declared in the bridge's "
                "config file and is read-only here; change it in that file"
            )
        if status == 422 and body.get("problems"):
            return InvalidIntegration(message, body["problems"])
        if status == 503:
            return BridgeUnavailable(f"webpaas-bridge at {self.api_url}: {message}")
        return CliError(
            f"webpaas-bridge at {self.api_url} returned HTTP {status}: {message}"
        )


def _decode(response: httpx.Response, api_url: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        if response.is_server_error:
            # Starlette responds to an unhandled error with a plain-text 500.
            raise CliError(
                f"webpaas-bridge at {api_url} failed with HTTP "
                f"{response.status_code}; see the bridge's log"
            )
        raise CliError(
            f"{api_url} returned HTTP {response.status_code} without a JSON "
            "object; check that --api-url points at webpaas-bridge"
        )
    return body


def _transport_reason(error: httpx.TransportError) -> str:
    # httpx's messages contain the OS error (for example "[Errno 111]
    # Connection refused") and no request data, so they are safe to show.
    return str(error) or type(error).__name__
