"""The admin API: manage integrations at run time over HTTP.

`admin_routes` returns the routes that the app mounts under ``/api/v1``:

    GET    /integrations                 list every integration
    POST   /integrations                 create one (validated first)
    POST   /integrations/validate        check every integration live
    GET    /integrations/{id}            show one
    PATCH  /integrations/{id}            change the given fields only
    DELETE /integrations/{id}            delete one
    POST   /integrations/{id}/validate   check one live
    GET    /deliveries                   list outbox rows (?status=dead for
                                         dead letters)
    POST   /deliveries/{id}/retry        make a dead letter pending, due now
    GET    /openapi.json                 this API as an OpenAPI 3.1 document

Every route requires the admin credential. Integrations declared in the
config file are listed with source ``config`` and are read-only here (409).

Validation has two stages. The format check (`validate_integration`: token
and key formats, URL rules) blocks, so a create or update that fails it is
rejected with 422 and nothing is stored. The live check (each target's
``check``: Slack ``auth.test`` and a test message, a PagerDuty test trigger
and resolve, a signed test event to a webhook) is reported but not
enforced. A create or update stores the integration and returns the live
result in ``validation``, because a target that is down right now is no
reason to lose the operator's input. ``?check=false`` skips the live check.

Secrets are write-only. Responses carry `Integration.public_view` only, and
every problem reason and delivery error passes through `_redact` before it
leaves, so even a target that quotes a secret in its error text cannot leak
it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import wraps
from importlib import resources
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bridge.admin_input import (
    MAX_BODY_BYTES,
    BodyError,
    changed_integration,
    new_integration,
    parse_json_object,
)
from bridge.auth import require_admin
from bridge.integrations import SECRET_FIELDS, Integration, Source
from bridge.store.base import (
    DEAD,
    DELIVERED,
    PENDING,
    Delivery,
    DeliverySuperseded,
    IntegrationConflict,
    IntegrationNotFound,
    StoreError,
)
from bridge.targets.base import Problem, SendContext, Target
from bridge.validation import validate_integration

if TYPE_CHECKING:
    from bridge.outbox import TargetLookup

logger = logging.getLogger(__name__)

# One live check makes at most two requests to a target (Slack auth.test
# and a message, a PagerDuty trigger and its resolve). A target that has not
# responded to both within this many seconds is reported as timed out.
LIVE_CHECK_TIMEOUT_SECONDS = 20.0

OPENAPI_RESOURCE = "admin-api.openapi.json"

# Rows that one GET /deliveries returns at most, and by default.
MAX_DELIVERIES_LIMIT = 1000
DEFAULT_DELIVERIES_LIMIT = 100
DELIVERY_STATUSES = (PENDING, DELIVERED, DEAD)
# SQLite integers are signed 64-bit; a larger id cannot name a row.
MAX_DELIVERY_ID = 2**63 - 1

# Field names that hold a secret in any integration type.
_SECRET_NAMES = frozenset(name for names in SECRET_FIELDS.values() for name in names)

Handler = Callable[[Request], Awaitable[Response]]


def admin_routes() -> list[BaseRoute]:
    """Return the admin API routes, to be mounted under ``/api/v1``."""
    return [
        Route("/openapi.json", _admin(openapi_document), methods=["GET"]),
        Route("/integrations", _admin(list_integrations), methods=["GET"]),
        Route("/integrations", _admin(create_integration), methods=["POST"]),
        Route(
            "/integrations/validate",
            _admin(validate_all_integrations),
            methods=["POST"],
        ),
        Route("/integrations/{id}", _admin(show_integration), methods=["GET"]),
        Route("/integrations/{id}", _admin(update_integration), methods=["PATCH"]),
        Route("/integrations/{id}", _admin(delete_integration), methods=["DELETE"]),
        Route(
            "/integrations/{id}/validate",
            _admin(validate_one_integration),
            methods=["POST"],
        ),
        Route("/deliveries", _admin(list_deliveries), methods=["GET"]),
        Route("/deliveries/{id}/retry", _admin(retry_delivery), methods=["POST"]),
    ]


class _Reject(Exception):
    """Ends a request with a JSON error; raised inside handlers only."""

    def __init__(
        self, status: int, message: str, problems: Iterable[dict[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = list(problems)


def _admin(handler: Handler) -> Handler:
    """Wrap a handler: require the admin credential, turn errors into JSON."""

    @wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            require_admin(request)
            return await handler(request)
        except HTTPException as error:
            logger.warning(
                "admin request rejected status=%d method=%s path=%r",
                error.status_code,
                request.method,
                request.url.path,
            )
            return _error_response(error.status_code, error.detail, error.headers)
        except _Reject as error:
            logger.info(
                "admin request rejected status=%d method=%s path=%r problems=%d",
                error.status,
                request.method,
                request.url.path,
                len(error.problems),
            )
            return _error_response(error.status, error.message, problems=error.problems)
        except StoreError as error:
            # Store errors name files and SQLite's reason but never a value.
            # The log gets the reason and the client a fixed message.
            logger.error(
                "admin request failed method=%s path=%r error=%r",
                request.method,
                request.url.path,
                str(error),
            )
            return _error_response(
                503, "the bridge could not read or write its store; see its log"
            )

    return endpoint


def _error_response(
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    problems: list[dict[str, str]] | None = None,
) -> JSONResponse:
    content: dict[str, Any] = {"error": message}
    if problems:
        content["problems"] = problems
    return JSONResponse(content, status_code=status, headers=headers)


async def openapi_document(request: Request) -> Response:
    """Serve the hand-written OpenAPI document of this API."""
    return Response(_openapi_bytes(), media_type="application/json")


def _openapi_bytes() -> bytes:
    return resources.files("bridge").joinpath("schemas", OPENAPI_RESOURCE).read_bytes()


async def list_integrations(request: Request) -> Response:
    """List every integration, config-declared ones included."""
    integrations = await _call_store(request, "list_integrations")
    return JSONResponse(
        {"integrations": [integration.public_view() for integration in integrations]}
    )


async def show_integration(request: Request) -> Response:
    """Show one integration."""
    integration = await _get(request)
    return JSONResponse(integration.public_view())


async def create_integration(request: Request) -> Response:
    """Validate and store a new integration, then report its live check."""
    body = await _json_body(request)
    built = new_integration(body, integration_id=secrets.token_hex(6))
    if isinstance(built, list):
        raise _invalid(built, body)

    validation = await _validate_for_write(request, built)
    stored = await _call_store(request, "create_integration", built)
    logger.info(
        "integration created id=%s type=%s live_check=%s",
        stored.id,
        stored.type,
        _live_outcome(validation),
    )
    return JSONResponse(
        {"integration": stored.public_view(), "validation": validation},
        status_code=201,
        headers={"Location": f"{request.url.path.rstrip('/')}/{stored.id}"},
    )


async def update_integration(request: Request) -> Response:
    """Change the given fields of an API integration; omitted fields stay."""
    current = await _get(request)
    _require_writable(current)
    body = await _json_body(request)
    built = changed_integration(current, body)
    if isinstance(built, list):
        raise _invalid(built, body)

    validation = await _validate_for_write(request, built)
    stored = await _call_store(request, "update_integration", built)
    changed = sorted(name for name in body if name != "type")
    logger.info(
        "integration updated id=%s type=%s fields=%s live_check=%s",
        stored.id,
        stored.type,
        ",".join(changed),
        _live_outcome(validation),
    )
    return JSONResponse({"integration": stored.public_view(), "validation": validation})


async def delete_integration(request: Request) -> Response:
    """Delete an API integration."""
    current = await _get(request)
    _require_writable(current)
    await _call_store(request, "delete_integration", current.id)
    logger.info("integration deleted id=%s type=%s", current.id, current.type)
    return Response(status_code=204)


async def validate_one_integration(request: Request) -> Response:
    """Check one integration's format, then test it live."""
    integration = await _get(request)
    return JSONResponse(await _validate(request, integration, live=True))


async def validate_all_integrations(request: Request) -> Response:
    """Check every integration at once; ``valid`` is true only if all are."""
    integrations = await _call_store(request, "list_integrations")
    results = await asyncio.gather(
        *(_validate(request, integration, live=True) for integration in integrations)
    )
    return JSONResponse(
        {"valid": all(result["valid"] for result in results), "results": results}
    )


async def list_deliveries(request: Request) -> Response:
    """List outbox rows, newest first; ``?status=dead`` lists dead letters."""
    status = request.query_params.get("status")
    if status is not None and status not in DELIVERY_STATUSES:
        raise _Reject(
            400,
            f"query parameter status must be one of {', '.join(DELIVERY_STATUSES)}, "
            f"not {status!r}",
        )
    limit = _limit_parameter(request)
    deliveries = await _call_store(request, "list_deliveries", status, limit)
    secret_values = await _all_secret_values(request)
    return JSONResponse(
        {
            "deliveries": [
                _delivery_view(delivery, secret_values) for delivery in deliveries
            ]
        }
    )


async def retry_delivery(request: Request) -> Response:
    """Make a dead letter pending again, due now, and wake the worker."""
    text = request.path_params["id"]
    delivery_id = _whole_number(text, MAX_DELIVERY_ID)
    if delivery_id is None:
        raise _dead_letter_not_found(text)
    try:
        delivery: Delivery = await run_in_threadpool(
            request.app.state.store.requeue_delivery, delivery_id, datetime.now(UTC)
        )
    except LookupError:
        # requeue_delivery raises it for an unknown id and for a row that
        # is pending or delivered alike.
        raise _dead_letter_not_found(text) from None
    except DeliverySuperseded as error:
        raise _Reject(409, str(error)) from None

    request.app.state.worker.wake()
    logger.info(
        "dead letter requeued delivery_id=%d event_id=%s integration=%s attempts=%d",
        delivery.id,
        delivery.event.id,
        delivery.integration_id,
        delivery.attempts,
    )
    secret_values = await _all_secret_values(request)
    return JSONResponse({"delivery": _delivery_view(delivery, secret_values)})


def _limit_parameter(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_DELIVERIES_LIMIT
    limit = _whole_number(text, MAX_DELIVERIES_LIMIT)
    if limit is None:
        raise _Reject(
            400,
            f"query parameter limit must be a whole number from 1 to "
            f"{MAX_DELIVERIES_LIMIT}, not {text!r}",
        )
    return limit


def _whole_number(text: str, maximum: int) -> int | None:
    """Parse ASCII digits as a number from 1 to ``maximum``, else return None.

    The length check comes first, because int() rejects strings of more
    than 4300 digits with ValueError.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    number = int(text)
    return number if 1 <= number <= maximum else None


def _dead_letter_not_found(delivery_id: str) -> _Reject:
    return _Reject(
        404,
        f"no dead letter has the id {json.dumps(delivery_id)}; list the dead "
        "letters with GET /api/v1/deliveries?status=dead",
    )


async def _all_secret_values(request: Request) -> list[str]:
    """Return every stored secret, to redact delivery errors with."""
    integrations = await _call_store(request, "list_integrations")
    return [
        value for integration in integrations for value in integration.secrets.values()
    ]


def _delivery_view(delivery: Delivery, secret_values: list[str]) -> dict[str, Any]:
    """Show one outbox row; ``last_error`` is redacted like problem reasons."""
    event = delivery.event
    last_error = delivery.last_error
    return {
        "id": delivery.id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "event_id": event.id,
        "event_type": event.type.value,
        "level": event.level.label,
        "integration_id": delivery.integration_id,
        "integration_type": delivery.integration_type,
        "disk": {"id": delivery.disk_id, "labels": event.disk.as_dict()},
        "last_error": (
            _redact(last_error, secret_values) if last_error is not None else None
        ),
        "occurred_at": event.occurred_at.isoformat(),
        "created_at": delivery.created_at.isoformat(),
        "next_attempt_at": delivery.next_attempt_at.isoformat(),
        "delivered_at": (
            delivery.delivered_at.isoformat() if delivery.delivered_at else None
        ),
    }


async def _validate_for_write(
    request: Request, integration: Integration
) -> dict[str, Any]:
    """Run both checks before a write; format problems reject it with 422."""
    check = request.query_params.get("check", "true")
    if check not in ("true", "false"):
        raise _Reject(
            400, f"query parameter check must be true or false, not {check!r}"
        )
    result = await _validate(request, integration, live=check == "true")
    if result["stage"] == "format" and not result["valid"]:
        raise _Reject(
            422, "integration is invalid; nothing was stored", result["problems"]
        )
    return {key: result[key] for key in ("valid", "live", "problems")}


def _live_outcome(validation: dict[str, Any]) -> str:
    if not validation["live"]:
        return "skipped"
    return "passed" if validation["valid"] else "failed"


async def _validate(
    request: Request, integration: Integration, *, live: bool
) -> dict[str, Any]:
    """Return the validation result of one integration as the API shows it.

    ``stage`` is ``format`` when the format check failed, and ``live``
    otherwise. The live check is skipped after a failed format check,
    because it could only fail the same way. ``live`` is true when the live
    check ran.
    """
    settings = request.app.state.settings
    problems = await validate_integration(
        integration, allow_private_targets=settings.allow_private_targets
    )
    stage = "format"
    if not problems and live:
        stage = "live"
        problems = await _live_problems(request, integration)
        if problems:
            logger.warning(
                "live check failed id=%s type=%s fields=%s",
                integration.id,
                integration.type,
                ",".join(problem.field for problem in problems),
            )
    return {
        "id": integration.id,
        "type": integration.type,
        "valid": not problems,
        "live": stage == "live",
        "stage": stage,
        "problems": _problem_dicts(problems, integration.secrets.values()),
    }


async def _live_problems(request: Request, integration: Integration) -> list[Problem]:
    """Run the target's live check, turning timeouts and crashes into problems."""
    target = _target_for(request, integration.type)
    if target is None:
        return [Problem("type", f"this bridge has no target for {integration.type}")]
    context = SendContext(integration=integration, client=request.app.state.http_client)
    try:
        async with asyncio.timeout(LIVE_CHECK_TIMEOUT_SECONDS):
            return list(await target.check(context))
    except TimeoutError:
        return [
            Problem(
                "integration",
                f"the live check timed out after {LIVE_CHECK_TIMEOUT_SECONDS:g} s",
            )
        ]
    except Exception as error:
        # Targets turn remote failures into problems, so an exception here is
        # a bug. It becomes a problem so that the other integrations still
        # get their results. Only its type is logged, because its text may
        # quote a request.
        logger.error(
            "live check raised id=%s type=%s error=%s",
            integration.id,
            integration.type,
            type(error).__name__,
        )
        return [
            Problem(
                "integration",
                f"the live check failed with {type(error).__name__}; "
                "see the bridge log",
            )
        ]


def _target_for(request: Request, integration_type: str) -> Target | None:
    """Find the target for a type with the lookup the delivery worker uses.

    So a live check tests the same code that sends notifications.
    """
    lookup: TargetLookup = request.app.state.target_lookup
    return lookup(integration_type)


def _problem_dicts(
    problems: Iterable[Problem], secret_values: Iterable[str]
) -> list[dict[str, str]]:
    values = list(secret_values)
    return [
        {"field": problem.field, "reason": _redact(problem.reason, values)}
        for problem in problems
    ]


def _redact(text: str, secret_values: Iterable[str]) -> str:
    """Replace every secret value found in ``text`` with ``***``."""
    for value in secret_values:
        # Shorter strings would blank out ordinary words, and no valid
        # token, routing key or shared key is that short.
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "***")
    return text


def _invalid(problems: list[Problem], body: dict[str, Any]) -> _Reject:
    """Build the 422 for a request body, redacting the secrets it carries."""
    values = [
        value
        for name, value in body.items()
        if name in _SECRET_NAMES and isinstance(value, str)
    ]
    return _Reject(
        422,
        "integration is invalid; nothing was stored",
        _problem_dicts(problems, values),
    )


async def _json_body(request: Request) -> dict[str, Any]:
    """Read the request body as a JSON object, within `MAX_BODY_BYTES`."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise _Reject(
            415, "request body must be JSON; set Content-Type: application/json"
        )

    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Reject(413, f"request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)

    try:
        return parse_json_object(b"".join(chunks))
    except BodyError as error:
        raise _Reject(error.status, str(error)) from None


async def _call_store(request: Request, method: str, *args: Any) -> Any:
    """Call a store method in a worker thread, since SQLite calls block.

    Raises:
        _Reject: 404 for an unknown id, also when a concurrent request
            deleted the integration after this one read it; 409 when the
            integration is declared in the config file or its id is taken.
    """
    subject = args[0] if args else None
    integration_id = getattr(subject, "id", subject)
    store = request.app.state.store
    try:
        return await run_in_threadpool(getattr(store, method), *args)
    except IntegrationNotFound:
        raise _not_found(str(integration_id)) from None
    except IntegrationConflict:
        if method == "create_integration":
            message = (
                f"integration id {integration_id} is taken; send the request again"
            )
            raise _Reject(409, message) from None
        raise _read_only(str(integration_id)) from None


async def _get(request: Request) -> Integration:
    integration_id = request.path_params["id"]
    integration: Integration = await _call_store(
        request, "get_integration", integration_id
    )
    return integration


def _not_found(integration_id: str) -> _Reject:
    return _Reject(
        404,
        f"integration {json.dumps(integration_id)} not found; "
        "list the ids with GET /api/v1/integrations",
    )


def _require_writable(integration: Integration) -> None:
    if integration.source is Source.CONFIG:
        raise _read_only(integration.id)


def _read_only(integration_id: str) -> _Reject:
    return _Reject(
        409,
        f"integration {json.dumps(integration_id)} is declared in the config "
        "file and is read-only through the API; change it in the config file",
    )
