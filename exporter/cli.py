"""Command line of the disk exporter: ``webpaas-disk-exporter``.

It serves the metrics at /metrics and a small HTML page at / over HTTP,
on 127.0.0.1:9846 unless --listen sets another address. SIGTERM and SIGINT stop
it with exit status 0. An invalid configuration or option exits with status
2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import gc
import html
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from exporter.collector import DiskCollector
from exporter.config import ExporterConfig, load_config
from exporter.errors import ConfigError, ExporterError
from exporter.exposition import CONTENT_TYPE, render
from exporter.statvfs import StatvfsProber

logger = logging.getLogger(__name__)

# Exporters conventionally listen in 9100-9999. That range is fully taken in
# the Prometheus wiki's port list (per Chris Siebenmann's blog, June 2023), so
# 9846 may clash with another exporter on the same host: use --listen then.
# The default address is loopback, so nothing is exposed until asked.
DEFAULT_LISTEN = "127.0.0.1:9846"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _Server(ThreadingMixIn, WSGIServer):
    """A WSGI server with a thread per request, so a slow scrape blocks no other."""

    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """A request handler that does not log every scrape."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _HelpFormatter(argparse.HelpFormatter):
    """Help that starts with "Usage:", as the project's click commands do."""

    def add_usage(
        self,
        usage: str | None,
        actions: Iterable[argparse.Action],
        groups: Iterable[argparse._MutuallyExclusiveGroup],
        prefix: str | None = None,
    ) -> None:
        super().add_usage(usage, actions, groups, prefix or "Usage: ")


class _GarbageCollectorPause:
    """A context that keeps the cyclic garbage collector off while scrapes run.

    A scrape of 1,000 mounts allocates about 12,000 dicts and samples that
    live until the text is rendered, so collections triggered during the
    scrape traverse them all. Python 3.11 ran a full collection about every
    sixth scrape, and each took about 7 ms on a 2-CPU VM, a third of a whole
    scrape. That made the 90th and 99th percentiles of scrapes slower than
    node_exporter's (bench/exporter_scrape.py). A scrape creates no reference
    cycles, so reference counting frees it. The collector resumes when the
    last concurrent scrape ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self._active == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._active += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0 and self._resume:
                gc.enable()


class _Shutdown(Exception):
    """Raised by the signal handler to leave serve_forever in the main thread."""


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:PORT`` for IPv6) into host and port."""
    host, separator, port = value.rpartition(":")
    if not separator or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(
            f"--listen: invalid address {value!r}; expected HOST:PORT such as "
            f"{DEFAULT_LISTEN}"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def landing_page(config: ExporterConfig) -> bytes:
    """Render the HTML page served at /."""
    services = "".join(
        f"<li>{html.escape(service.name)}: {html.escape(', '.join(service.paths))}</li>"
        for service in config.services
    )
    discovery = (
        f"on, service label {html.escape(config.discovery.service)!s}"
        if config.discovery.enabled
        else "off"
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        "<title>webpaas disk exporter</title></head><body>"
        "<h1>webpaas disk exporter</h1>"
        "<p>Free space of every monitored filesystem, for Prometheus.</p>"
        '<p><a href="/metrics">Metrics</a></p>'
        f"<p>Mount discovery: {discovery}.</p>"
        f"<p>Services:</p><ul>{services or '<li>none configured</li>'}</ul>"
        "</body></html>\n"
    ).encode()


def make_app(collector: DiskCollector, config: ExporterConfig) -> WSGIApp:
    """Build the WSGI application: /metrics, the page at /, 404 elsewhere."""
    page = landing_page(config)
    gc_pause = _GarbageCollectorPause()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            with gc_pause:
                body = render(collector.collect())
            # NOTE: the body is never gzip-compressed, even when the scraper
            # accepts it. 1,000 mounts with short mount points made 670 kB.
            return _respond(start_response, "200 OK", CONTENT_TYPE, body)
        if path == "/":
            return _respond(start_response, "200 OK", "text/html; charset=utf-8", page)
        return _respond(
            start_response,
            "404 Not Found",
            "text/plain; charset=utf-8",
            b"Not found; the metrics are at /metrics\n",
        )

    return app


def _respond(
    start_response: StartResponse, status: str, content_type: str, body: bytes
) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(body)))],
    )
    return [body]


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="webpaas-disk-exporter",
        formatter_class=_HelpFormatter,
        description="Publish the free space of every service's mounts for "
        "Prometheus at /metrics.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration file (see docs/exporter.md); without it, "
        "every mount is discovered with the default filters",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        default=DEFAULT_LISTEN,
        help=f"address to serve HTTP on (default {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="minimum level of log lines on stderr (default INFO)",
    )
    return parser.parse_args(argv)


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise _Shutdown(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter until SIGTERM or SIGINT; return the exit status."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_config(args.config) if args.config else ExporterConfig()
        host, port = parse_listen(args.listen)
        server = _bind(host, port)
    except ExporterError as error:
        print(f"webpaas-disk-exporter: {error}", file=sys.stderr)
        return 2

    prober = StatvfsProber(
        timeout=config.statvfs_timeout_seconds,
        deadline=config.collect_timeout_seconds,
    )
    server.set_app(make_app(DiskCollector(config, prober), config))

    # Python runs signal handlers in the main thread, which is the one in
    # serve_forever, so raising there ends the loop.
    signal.signal(signal.SIGTERM, _raise_shutdown)
    signal.signal(signal.SIGINT, _raise_shutdown)
    bound_host, bound_port = server.server_address[:2]
    logger.info(
        "serving metrics on http://%s:%s/metrics for %d services, discovery %s",
        _url_host(str(bound_host)),
        bound_port,
        len(config.services),
        "on" if config.discovery.enabled else "off",
    )
    try:
        server.serve_forever()
    except _Shutdown as stop:
        logger.info("stopping on %s", stop)
    finally:
        server.server_close()
        prober.close()
    return 0


def _bind(host: str, port: int) -> WSGIServer:
    server_class: type[_Server] = _Server
    if ":" in host:
        server_class = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    try:
        return make_server(
            host,
            port,
            _unset_app,
            server_class=server_class,
            handler_class=_QuietHandler,
        )
    except OSError as error:
        raise ConfigError(
            f"--listen: cannot listen on {host}:{port}: {error.strerror}; "
            "choose another address"
        ) from error


def _unset_app(
    environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting\n"]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


if __name__ == "__main__":
    sys.exit(main())
