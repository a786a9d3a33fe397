"""The ``webpaas-bridge`` command: load settings, open the store, serve.

Exit status: SIGTERM or SIGINT start a graceful shutdown that stops the
delivery worker. uvicorn then re-raises the signal, so the process ends by
that signal (143 or 130 in a shell), which systemd counts as a clean stop
for SIGTERM. The status is 2 for invalid settings, and 1 when the store
cannot be opened or the server could not start.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import sys
from collections.abc import Sequence

import uvicorn

from bridge.app import create_app
from bridge.config import (
    DEFAULT_DB,
    DEFAULT_LISTEN,
    Settings,
    load_settings,
    require_credentials,
)
from bridge.errors import ConfigError
from bridge.store.base import IntegrationConflict, StoreError
from bridge.validation import validate_integration

logger = logging.getLogger(__name__)


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger and message."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Send every logger's records to stderr in the configured format."""
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "time=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="webpaas-bridge",
        description=(
            "Receive Alertmanager webhooks and send warning, critical and "
            "all-clear notifications. Every option also has an environment "
            "variable; see docs/bridge.md."
        ),
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("WEBPAAS_CONFIG") or None,
        help="YAML settings file (WEBPAAS_CONFIG, default none)",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to listen on (WEBPAAS_LISTEN, default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"SQLite store file (WEBPAAS_DB, default {DEFAULT_DB})",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_const",
        const=True,
        default=None,
        help="accept Alertmanager messages without a credential "
        "(WEBPAAS_INSECURE_NO_AUTH=1); logs a warning",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="log level (WEBPAAS_LOG_LEVEL, default info)",
    )
    parser.add_argument(
        "--log-format",
        choices=("logfmt", "json"),
        help="log line format (WEBPAAS_LOG_FORMAT, default logfmt)",
    )
    return parser.parse_args(argv)


def check_config_integrations(settings: Settings) -> None:
    """Check the config file's integrations as the admin API checks new ones.

    A config integration that fails these checks would fail every delivery,
    so the bridge does not start with one. A webhook host name that cannot
    be resolved now passes, as in the admin API.

    Raises:
        ConfigError: naming each integration id, field and problem, never a
            secret value.
    """

    async def check_all() -> list[str]:
        problems = []
        for integration in settings.integrations:
            found = await validate_integration(
                integration, allow_private_targets=settings.allow_private_targets
            )
            problems.extend(f"integration {integration.id!r}: {item}" for item in found)
        return problems

    problems = asyncio.run(check_all())
    if problems:
        raise ConfigError("; ".join(problems) + "; fix them in the config file")


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the new one.

    uvicorn has no timeout for a request's headers, so every slow client
    holds a connection and a file descriptor until it closes. At the limit
    new connections fail and asyncio logs each failed accept. systemd gives
    services a soft limit of 1024 under a hard one of 524288, so raising
    the soft one moves that point far beyond a few hundred slow clients.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft
        return wanted
    return soft


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bridge until SIGTERM or SIGINT; return the exit status."""
    arguments = parse_arguments(argv)
    try:
        settings = load_settings(
            arguments.config,
            overrides={
                "listen": arguments.listen,
                "db": arguments.db,
                "insecure_no_auth": arguments.insecure_no_auth,
                "log_level": arguments.log_level,
                "log_format": arguments.log_format,
            },
        )
        warnings = require_credentials(settings)
        check_config_integrations(settings)
    except ConfigError as exc:
        print(f"webpaas-bridge: error: {exc}", file=sys.stderr)
        return 2

    configure_logging(settings)
    for warning in warnings:
        logger.warning("insecure setting: %s", warning)

    try:
        app = create_app(settings)
    except (StoreError, IntegrationConflict) as exc:
        logger.error("cannot start: %s", exc)
        print(f"webpaas-bridge: error: {exc}", file=sys.stderr)
        return 1

    # What exists now (modules, the app, the settings) lives as long as the
    # process. Frozen, it is left out of every collection: under ingest load
    # a full collection then takes about 3 ms instead of 22 ms, a pause that
    # every request in flight waits through (docs/benchmarks.md, section 1).
    gc.freeze()
    logger.info(
        "bridge starting listen=%s db=%s integrations_from_config=%d "
        "open_files_limit=%d frozen_objects=%d",
        settings.listen,
        settings.db,
        len(settings.integrations),
        raise_open_file_limit(),
        gc.get_freeze_count(),
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises SIGTERM or SIGINT after its graceful shutdown, so a
    # signal ends the process here with the signal's status.
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
