"""Parse and check the JSON bodies that the admin API receives.

The admin API takes integrations flat, the way `Integration.public_view`
shows them: ``{"type": "health.slack", "token": "xoxb-...", "channel":
"#ops"}``. This module turns such a body into an `Integration` or into the
list of problems that make it unusable. It checks structure only (known
fields, strings, required fields present); the value rules per type live in
`bridge.validation`.

Nothing here puts a submitted value into a message: a value might be a
secret, so every problem names the field and never repeats the value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.integrations import (
    REQUIRED_FIELDS,
    SECRET_FIELDS,
    SETTING_FIELDS,
    TYPES,
    Integration,
    Source,
)
from bridge.targets.base import Problem

# Admin bodies contain a type and at most three short strings, so 64 KiB is
# generous. The limit keeps a hostile client from making the bridge buffer
# an arbitrary amount of memory.
MAX_BODY_BYTES = 64 * 1024

# Long enough for any URL a browser accepts in practice (about 2,000
# characters) and for every token format of Slack and PagerDuty.
MAX_VALUE_CHARS = 2048

# Fields of the public view that the bridge sets itself.
READ_ONLY_FIELDS = ("id", "source", "read_only", "created_at", "updated_at")


class BodyError(ValueError):
    """A request body that is not one JSON object, with the status to return."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Decode a request body that must be one JSON object.

    Raises:
        BodyError: the body is empty, not JSON, nested too deeply, repeats a
            key or is not an object.
    """
    if not body.strip():
        raise BodyError("request body is empty; send a JSON object")

    try:
        decoded = json.loads(body, object_pairs_hook=_reject_duplicate_keys)
    except RecursionError:
        raise BodyError("request body is nested too deeply") from None
    except ValueError as error:
        # JSONDecodeError and UnicodeDecodeError name a position and at most
        # one byte, never the document, so their text is safe to return.
        raise BodyError(f"request body is not valid JSON: {error}") from None

    if not isinstance(decoded, dict):
        raise BodyError(
            f"request body is a JSON {_json_type(decoded)}; send a JSON object",
            status=422,
        )
    return decoded


def _json_type(value: Any) -> str:
    """Name a decoded JSON value's type the way JSON does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array"


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads silently keeps the last of two equal keys, so a body could
    # carry a second "token" that a proxy or log filter never saw.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def fields_of(integration_type: str) -> tuple[str, ...]:
    """Return the setting and secret field names of an integration type."""
    return SETTING_FIELDS[integration_type] + SECRET_FIELDS[integration_type]


def new_integration(
    body: Mapping[str, Any], integration_id: str
) -> Integration | list[Problem]:
    """Build a new integration from a create request, or return its problems."""
    integration_type = body.get("type")
    if integration_type is None:
        return [Problem("type", f"is required; one of: {', '.join(TYPES)}")]
    if integration_type not in TYPES:
        return [Problem("type", f"is not a known type; one of: {', '.join(TYPES)}")]

    problems = _check_fields(body, integration_type, allow_null=False)
    for name in REQUIRED_FIELDS[integration_type]:
        if name not in body:
            problems.append(Problem(name, f"is required for {integration_type}"))
    if problems:
        return problems

    now = datetime.now(UTC)
    return Integration(
        id=integration_id,
        type=integration_type,
        settings=_pick(body, SETTING_FIELDS[integration_type]),
        secrets=_pick(body, SECRET_FIELDS[integration_type]),
        source=Source.API,
        created_at=now,
        updated_at=now,
    )


def changed_integration(
    current: Integration, body: Mapping[str, Any]
) -> Integration | list[Problem]:
    """Apply a partial update to a copy of ``current``, or return its problems.

    Fields left out of ``body`` keep their value, secrets included. A field
    sent as JSON ``null`` is removed, which only optional fields allow.
    """
    problems: list[Problem] = []
    if "type" in body and body["type"] != current.type:
        problems.append(
            Problem("type", "cannot change; delete the integration and add a new one")
        )
    problems += _check_fields(body, current.type, allow_null=True)

    changes = {name: body[name] for name in fields_of(current.type) if name in body}
    if not changes and not problems:
        problems.append(
            Problem(
                "body",
                f"names no field to change; fields of {current.type}: "
                f"{', '.join(fields_of(current.type))}",
            )
        )
    for name, value in changes.items():
        if value is None and name in REQUIRED_FIELDS[current.type]:
            problems.append(Problem(name, "is required and cannot be removed"))
    if problems:
        return problems

    settings = _merge(current.settings, changes, SETTING_FIELDS[current.type])
    secrets = _merge(current.secrets, changes, SECRET_FIELDS[current.type])
    return Integration(
        id=current.id,
        type=current.type,
        settings=settings,
        secrets=secrets,
        source=current.source,
        created_at=current.created_at,
        updated_at=datetime.now(UTC),
    )


def _check_fields(
    body: Mapping[str, Any], integration_type: str, *, allow_null: bool
) -> list[Problem]:
    """Check every field of ``body`` except ``type`` against the type's fields."""
    known = fields_of(integration_type)
    secrets = SECRET_FIELDS[integration_type]
    problems: list[Problem] = []

    for name, value in body.items():
        if name == "type":
            continue
        if name in READ_ONLY_FIELDS:
            problems.append(Problem(name, "is set by the bridge and cannot be sent"))
        elif name not in known:
            problems.append(
                Problem(
                    name,
                    f"is not a field of {integration_type}; fields: {', '.join(known)}",
                )
            )
        elif value is None and allow_null:
            continue
        elif not isinstance(value, str):
            reason = "must be a string"
            if name in secrets:
                reason += " (secrets are write-only: send the new value)"
            problems.append(Problem(name, reason))
        elif not value.strip():
            problems.append(Problem(name, "must not be empty"))
        elif len(value) > MAX_VALUE_CHARS:
            problems.append(
                Problem(name, f"is longer than {MAX_VALUE_CHARS} characters")
            )
    return problems


def _pick(body: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    return {name: body[name] for name in names if body.get(name) is not None}


def _merge(
    current: Mapping[str, str], changes: Mapping[str, Any], names: tuple[str, ...]
) -> dict[str, str]:
    merged = dict(current)
    for name in names:
        if name not in changes:
            continue
        if changes[name] is None:
            merged.pop(name, None)
        else:
            merged[name] = changes[name]
    return merged
