"""The bridge's HTTP app: Alertmanager's webhook, health, readiness, metrics.

`create_app` builds a Starlette app around a store and a delivery worker.
The routes stay thin: parsing is in ``bridge.alertmanager``, decisions in
``bridge.state``, storage in ``bridge.store`` and sending in
``bridge.outbox``.

``app.state`` carries ``settings``, ``store``, ``metrics``, ``worker``,
``pruner`` and ``http_client`` (the one `httpx.AsyncClient` for outbound
requests, open while the lifespan runs), for the admin API mounted at
``/api/v1``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from bridge.admin import admin_routes
from bridge.alertmanager import Message, parse_message
from bridge.auth import check_alertmanager
from bridge.config import Settings
from bridge.errors import PayloadError
from bridge.http import outbound_client
from bridge.metrics import BridgeMetrics
from bridge.model import DiskKey
from bridge.outbox import DeliveryWorker, TargetLookup
from bridge.retention import FIRST_DELAY_SECONDS, INTERVAL_SECONDS, StorePruner
from bridge.state import DiskState, apply_alerts, group_by_disk
from bridge.store.base import Store, StoreError, Transitions
from bridge.store.sqlite import SQLiteStore
from bridge.targets.base import Target
from bridge.targets.registry import UnknownIntegrationType, build_targets, target_for

logger = logging.getLogger(__name__)

# httpx logs every request with its full URL at INFO, and webhook URLs and
# Slack or PagerDuty proxies can hold secrets in the URL.
for _name in ("httpx", "httpcore", "aiohttp"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class _TooLarge(Exception):
    pass


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Answer the router's own 404 and 405 in JSON, like every other error."""
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": exc.detail}, status_code=exc.status_code, headers=exc.headers
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """Read the body, stopping as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _decider(message: Message, groups: Mapping[DiskKey, list[Any]]) -> Any:
    """Return the function the store runs inside its transaction."""
    now = datetime.now(UTC)

    def decide(current: Mapping[str, DiskState]) -> Transitions:
        states = []
        events = []
        for disk, alerts in groups.items():
            change = apply_alerts(
                disk,
                current.get(disk.id),
                alerts,
                now=now,
                new_event_id=lambda: str(uuid.uuid4()),
                external_url=message.external_url,
            )
            if change.state is not None:
                states.append(change.state)
            if change.event is not None:
                events.append(change.event)
        return Transitions(states=states, events=events)

    return decide


async def receive_alertmanager(request: Request) -> Response:
    """Apply a webhook message and answer 2xx only once it is committed."""
    settings: Settings = request.app.state.settings
    metrics: BridgeMetrics = request.app.state.metrics
    response = await _receive(request, settings, metrics)
    metrics.messages.labels(str(response.status_code)).inc()
    return response


async def _receive(
    request: Request, settings: Settings, metrics: BridgeMetrics
) -> Response:
    try:
        check_alertmanager(request, settings)
    except HTTPException as exc:
        logger.warning(
            "message rejected status=%d reason=%r", exc.status_code, exc.detail
        )
        return JSONResponse(
            {"error": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _error(415, "Content-Type must be application/json")

    try:
        body = await _read_body(request, settings.max_request_bytes)
    except _TooLarge:
        logger.warning(
            "message rejected status=413 limit_bytes=%d", settings.max_request_bytes
        )
        return _error(
            413,
            f"body is larger than the limit of {settings.max_request_bytes} bytes "
            "(max_request_bytes)",
        )

    try:
        message = parse_message(body)
    except PayloadError as exc:
        logger.warning("message rejected status=%d error=%r", exc.status, str(exc))
        return _error(exc.status, str(exc), field=exc.field)

    groups = group_by_disk(message.alerts)
    store: Store = request.app.state.store
    try:
        committed = await store.apply_transitions_async(
            [disk.id for disk in groups], _decider(message, groups)
        )
    except StoreError as exc:
        logger.error(
            "message not committed group_key=%r alerts=%d error=%r",
            message.group_key,
            len(message.alerts),
            str(exc),
        )
        return _error(503, "the bridge could not commit the message; retry later")

    for alert in message.alerts:
        metrics.alerts.labels(alert.status).inc()
    if message.truncated_alerts:
        # Alertmanager's max_alerts left these out: their disks change only
        # when a later message carries them.
        logger.warning(
            "message truncated by Alertmanager group_key=%r truncated_alerts=%d; "
            "set max_alerts: 0 in the webhook receiver",
            message.group_key,
            message.truncated_alerts,
        )
    for event in committed.events:
        metrics.transitions.labels(event.level.label).inc()
        logger.info(
            "transition event_id=%s disk=%s type=%s previous=%s level=%s",
            event.id,
            event.disk.id,
            event.type.value,
            event.previous_level.label,
            event.level.label,
        )
    logger.info(
        "message received receiver=%r group_key=%r alerts=%d disks=%d "
        "transitions=%d deliveries=%d",
        message.receiver,
        message.group_key,
        len(message.alerts),
        len(groups),
        len(committed.events),
        committed.deliveries,
    )
    if committed.deliveries:
        request.app.state.worker.wake()
    return JSONResponse(
        {
            "status": "accepted",
            "alerts": len(message.alerts),
            "transitions": len(committed.events),
        }
    )


async def healthz(request: Request) -> Response:
    """Answer 200 while the process serves requests."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Answer 200 when the store takes writes and the worker runs."""
    reasons = []
    try:
        await run_in_threadpool(request.app.state.store.check_writable)
    except StoreError as exc:
        reasons.append(f"store is not writable: {exc}")
    worker: DeliveryWorker | None = getattr(request.app.state, "worker", None)
    if worker is None or not worker.running:
        reasons.append("delivery worker is not running")
    elif worker.last_error:
        reasons.append(f"delivery worker cannot read the outbox: {worker.last_error}")
    if reasons:
        return JSONResponse(
            {"status": "not ready", "reasons": reasons}, status_code=503
        )
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    """Expose the bridge's own metrics in the Prometheus text format."""
    metrics: BridgeMetrics = request.app.state.metrics
    try:
        stats = await run_in_threadpool(
            request.app.state.store.outbox_stats, datetime.now(UTC)
        )
        metrics.set_outbox(stats)
    except StoreError as exc:
        # The scrape still serves the counters; the outbox gauges keep their
        # last values and the log says why.
        logger.warning("outbox stats unavailable error=%r", str(exc))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _target_lookup(targets: Mapping[str, Target]) -> TargetLookup:
    def lookup(integration_type: str) -> Target | None:
        try:
            return target_for(integration_type, targets)
        except UnknownIntegrationType:
            return None

    return lookup


def create_app(
    settings: Settings,
    store: Store | None = None,
    targets: Mapping[str, Target] | None = None,
    prune_interval_seconds: float = INTERVAL_SECONDS,
) -> Starlette:
    """Build the bridge app.

    Args:
        settings: loaded settings; credentials are checked per request.
        store: the store to use; by default a `SQLiteStore` at ``settings.db``,
            closed when the app stops.
        targets: targets by integration type; by default built from the
            settings' Slack and PagerDuty URLs. Tests pass fakes here.
        prune_interval_seconds: time between two runs of the store pruner,
            whose first run comes after this or a minute, whichever is less.

    Raises:
        StoreError: the default store cannot be opened.
        IntegrationConflict: a config-declared integration id is taken.
    """
    owns_store = store is None
    active_store: Store = store if store is not None else SQLiteStore(settings.db)
    active_store.sync_config_integrations(settings.integrations)
    metrics = BridgeMetrics()
    if targets is None:
        targets = build_targets(
            settings.slack_api_url,
            settings.pagerduty_events_url,
            settings.allow_private_targets,
        )
    lookup = _target_lookup(targets)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = outbound_client(settings.delivery_timeout_seconds)
        app.state.http_client = client
        worker = DeliveryWorker(active_store, lookup, client, settings, metrics)
        app.state.worker = worker
        worker.start()
        pruner = StorePruner(
            active_store,
            metrics,
            settings.store_retention_seconds,
            interval_seconds=prune_interval_seconds,
            first_delay_seconds=min(FIRST_DELAY_SECONDS, prune_interval_seconds),
        )
        app.state.pruner = pruner
        pruner.start()
        try:
            yield
        finally:
            await pruner.stop()
            await worker.stop()
            await client.aclose()
            if owns_store:
                active_store.close()

    routes: list[BaseRoute] = [
        Route("/alertmanager", receive_alertmanager, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Mount("/api/v1", routes=admin_routes()),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.settings = settings
    app.state.store = active_store
    app.state.metrics = metrics
    # The admin API's live check uses the targets that deliveries use.
    app.state.target_lookup = lookup
    return app
