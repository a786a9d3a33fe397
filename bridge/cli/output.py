"""Render admin API responses as tables for people or JSON for scripts.

Everything printed comes from the API's public view, where a secret is
``{"set": true, "last4": "..."}`` at most, so no renderer here can print a
secret that the CLI was given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from bridge.integrations import SECRET_FIELDS, SETTING_FIELDS

_TIMESTAMP_FIELDS = ("created_at", "updated_at")


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def echo_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print rows in columns padded to their widest cell."""
    widths = [
        max(len(str(cell)) for cell in column)
        for column in zip(header, *rows, strict=False)
    ]
    for row in (header, *rows):
        cells = [
            str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
        ]
        click.echo("  ".join(cells).rstrip())


def echo_integration_list(integrations: list[dict[str, Any]]) -> None:
    if not integrations:
        click.echo("no integrations; add one with `webpaas integration:add`")
        return
    rows = [
        (
            item["id"],
            item["type"],
            item["source"],
            _destination(item),
            _secrets_summary(item),
        )
        for item in integrations
    ]
    echo_table(("ID", "TYPE", "SOURCE", "DESTINATION", "SECRETS"), rows)


def echo_integration(item: dict[str, Any]) -> None:
    """Print one integration as ``name: value`` lines."""
    lines = [
        ("id", item["id"]),
        ("type", item["type"]),
        ("source", item["source"]),
        ("read_only", "yes" if item.get("read_only") else "no"),
    ]
    lines += [(name, item[name]) for name in SETTING_FIELDS.get(item["type"], ())]
    lines += [
        (name, describe_secret(item.get(name)))
        for name in SECRET_FIELDS.get(item["type"], ())
    ]
    lines += [(name, item.get(name) or "-") for name in _TIMESTAMP_FIELDS]

    width = max(len(name) for name, _ in lines) + 1
    for name, value in lines:
        click.echo(f"{name + ':':<{width}} {value}")


def echo_validation(result: dict[str, Any]) -> None:
    """Print one validation result: a status line, then ``field: reason`` lines."""
    status = "valid" if result["valid"] else "invalid"
    if result["valid"] and not result.get("live", True):
        status += " (live check skipped)"
    click.echo(f"{result['id']} ({result['type']}): {status}")
    echo_problems(result["problems"])


def echo_problems(problems: list[dict[str, str]]) -> None:
    for problem in problems:
        click.echo(f"  {problem['field']}: {problem['reason']}")


def describe_secret(hint: Any) -> str:
    """Describe a secret from its public hint, e.g. ``set, ends in 1a2b``."""
    if not isinstance(hint, dict) or not hint.get("set"):
        return "not set"
    if hint.get("last4"):
        return f"set, ends in {hint['last4']}"
    return "set"


def _destination(item: dict[str, Any]) -> str:
    values = [item.get(name) for name in SETTING_FIELDS.get(item["type"], ())]
    return " ".join(value for value in values if value) or "-"


def _secrets_summary(item: dict[str, Any]) -> str:
    parts = [
        f"{name} {describe_secret(item.get(name))}"
        for name in SECRET_FIELDS.get(item["type"], ())
    ]
    return ", ".join(parts) or "-"


def echo_delivery_list(deliveries: list[dict[str, Any]], dead_only: bool) -> None:
    if not deliveries:
        click.echo("no dead letters" if dead_only else "no deliveries")
        return
    rows = [
        (
            str(item["id"]),
            item["status"],
            str(item["attempts"]),
            item["integration_id"],
            item["event_id"],
            describe_disk(item["disk"]),
            item["created_at"],
            item.get("last_error") or "-",
        )
        for item in deliveries
    ]
    echo_table(
        (
            "ID",
            "STATUS",
            "ATTEMPTS",
            "INTEGRATION",
            "EVENT",
            "DISK",
            "CREATED",
            "LAST ERROR",
        ),
        rows,
    )


def echo_delivery(item: dict[str, Any]) -> None:
    """Print one delivery as ``name: value`` lines."""
    lines = [
        ("id", str(item["id"])),
        ("status", item["status"]),
        ("attempts", str(item["attempts"])),
        ("integration", f"{item['integration_id']} ({item['integration_type']})"),
        ("event", f"{item['event_id']} ({item['event_type']})"),
        ("disk", describe_disk(item["disk"])),
        ("last_error", item.get("last_error") or "-"),
        ("created_at", item["created_at"]),
        ("next_attempt_at", item["next_attempt_at"]),
        ("delivered_at", item.get("delivered_at") or "-"),
    ]
    width = max(len(name) for name, _ in lines) + 1
    for name, value in lines:
        click.echo(f"{name + ':':<{width}} {value}")


def describe_disk(disk: dict[str, Any]) -> str:
    """Name a disk by its labels, e.g. ``shop/main/db:/var/lib/mysql``.

    Falls back to the disk id when the labels have none of the usual names.
    """
    labels = disk.get("labels") or {}
    owner = "/".join(
        labels[name] for name in ("project", "environment", "service") if name in labels
    )
    mountpoint = labels.get("mountpoint", "")
    if owner and mountpoint:
        return f"{owner}:{mountpoint}"
    return owner or mountpoint or str(disk.get("id", "-"))
