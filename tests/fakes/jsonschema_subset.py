"""A check of JSON values against the small JSON Schema subset the bridge uses.

The project does not depend on a JSON Schema library, so this covers the
keywords that ``bridge/schemas/webhook-event.schema.json`` uses.
`SUPPORTED_KEYWORDS` lets a test fail when the schema starts using others.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any


def load_webhook_schema() -> dict[str, Any]:
    schema = resources.files("bridge").joinpath("schemas/webhook-event.schema.json")
    return json.loads(schema.read_text(encoding="utf-8"))


_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return name == "number" or float(value).is_integer()
    return isinstance(value, _JSON_TYPES[name])


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Check ``value`` against the JSON Schema keywords the webhook schema uses.

    Supports type, const, enum, required, properties, additionalProperties
    (as a schema), pattern and minLength; enough for the published schema,
    which a test keeps to that subset.
    """
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if not any(_is_type(value, name) for name in names):
            return [f"{path}: {value!r} is not of type {types}"]
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing {name!r}")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors.extend(schema_errors(item, properties[name], f"{path}.{name}"))
            elif isinstance(schema.get("additionalProperties"), dict):
                extra = schema["additionalProperties"]
                errors.extend(schema_errors(item, extra, f"{path}.{name}"))
    return errors


SUPPORTED_KEYWORDS = {
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "const",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "pattern",
    "minLength",
    "format",
}
