"""Load and validate the exporter's YAML configuration.

Validation is strict: an unknown key, a value of the wrong type or an
invalid pattern is rejected at start with a ConfigError whose message names
the key, such as ``services[0].paths[1]``, and the problem. The reference
of every key is docs/exporter.md.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from exporter import mounts, statvfs
from exporter.errors import ConfigError

# Label names as the Prometheus data model defines them; names starting with
# "__" are reserved for Prometheus' internal use.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DISK_LABELS = ("service", "mountpoint", "device", "fstype")
DEFAULT_DISCOVERY_SERVICE = "host"


@dataclass(frozen=True)
class Service:
    """A service and the paths whose filesystems it owns."""

    name: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Discovery:
    """Rules that select the mounts published beyond the services' paths."""

    enabled: bool = True
    service: str = DEFAULT_DISCOVERY_SERVICE
    filter: mounts.MountFilter = field(default_factory=mounts.MountFilter)


@dataclass(frozen=True)
class ExporterConfig:
    """The whole configuration; the defaults are what runs without a file."""

    labels: Mapping[str, str] = field(default_factory=dict)
    services: tuple[Service, ...] = ()
    discovery: Discovery = field(default_factory=Discovery)
    statvfs_timeout_seconds: float = statvfs.DEFAULT_TIMEOUT_SECONDS
    collect_timeout_seconds: float = statvfs.DEFAULT_DEADLINE_SECONDS


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that rejects a key repeated in one mapping."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_config(path: str | os.PathLike[str]) -> ExporterConfig:
    """Read and validate the configuration file at ``path``."""
    try:
        with open(path, encoding="utf-8") as file:
            document = yaml.load(file, Loader=_StrictLoader)  # noqa: S506
    except OSError as error:
        raise ConfigError(
            f"cannot read config file {path}: {error.strerror}"
        ) from error
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"invalid YAML in config file {path}: {error}") from error
    return parse_config({} if document is None else document)


def parse_config(document: object) -> ExporterConfig:
    """Validate a parsed YAML document and build the configuration from it."""
    top = _mapping(document, "the top level")
    _reject_unknown(
        top,
        "",
        (
            "labels",
            "services",
            "discovery",
            "statvfs_timeout_seconds",
            "collect_timeout_seconds",
        ),
    )

    statvfs_timeout = _seconds(
        top, "statvfs_timeout_seconds", statvfs.DEFAULT_TIMEOUT_SECONDS
    )
    collect_timeout = _seconds(
        top, "collect_timeout_seconds", statvfs.DEFAULT_DEADLINE_SECONDS
    )
    if statvfs_timeout > collect_timeout:
        raise ConfigError(
            f"statvfs_timeout_seconds: {statvfs_timeout:g} is longer than "
            f"collect_timeout_seconds ({collect_timeout:g}); lower it"
        )

    return ExporterConfig(
        labels=_labels(top.get("labels")),
        services=_services(top.get("services")),
        discovery=_discovery(top.get("discovery")),
        statvfs_timeout_seconds=statvfs_timeout,
        collect_timeout_seconds=collect_timeout,
    )


def _labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    labels = _mapping(value, "labels")
    result = {}
    for name, label_value in labels.items():
        key = f"labels.{name}"
        if not isinstance(name, str) or not LABEL_NAME.match(name):
            raise ConfigError(
                f"{key}: invalid label name; use letters, digits and underscores, "
                "not starting with a digit"
            )
        if name.startswith("__"):
            raise ConfigError(f"{key}: label names starting with '__' are reserved")
        if name in DISK_LABELS:
            raise ConfigError(
                f"{key}: the exporter sets this label itself; choose another name"
            )
        result[name] = _text(label_value, key)
    return result


def _services(value: object) -> tuple[Service, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"services: must be a list, got {_type_name(value)}")

    services = []
    names: set[str] = set()
    for index, item in enumerate(value):
        key = f"services[{index}]"
        entry = _mapping(item, key)
        _reject_unknown(entry, key, ("name", "paths"))
        if "name" not in entry:
            raise ConfigError(f"{key}.name: missing")
        name = _text(entry["name"], f"{key}.name")
        if name in names:
            raise ConfigError(f"{key}.name: duplicate service name {name!r}")
        names.add(name)
        services.append(Service(name, _paths(entry.get("paths"), f"{key}.paths")))
    return tuple(services)


def _paths(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{key}: must be a non-empty list of absolute paths")
    paths: list[str] = []
    for index, item in enumerate(value):
        item_key = f"{key}[{index}]"
        path = _text(item, item_key)
        if not path.startswith("/"):
            raise ConfigError(f"{item_key}: must be an absolute path, got {path!r}")
        if "\0" in path:
            raise ConfigError(f"{item_key}: must not contain a NUL character")
        normalized = os.path.normpath(path)
        # POSIX lets normpath keep a leading "//"; it is the same directory.
        normalized = "/" + normalized.lstrip("/")
        if normalized in paths:
            raise ConfigError(f"{item_key}: duplicate path {normalized!r}")
        paths.append(normalized)
    return tuple(paths)


def _discovery(value: object) -> Discovery:
    if value is None:
        return Discovery()
    entry = _mapping(value, "discovery")
    _reject_unknown(
        entry,
        "discovery",
        (
            "enabled",
            "service",
            "mount_points_include",
            "mount_points_exclude",
            "fs_types_include",
            "fs_types_exclude",
        ),
    )

    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(
            f"discovery.enabled: must be true or false, got {_type_name(enabled)}"
        )
    service = _text(
        entry.get("service", DEFAULT_DISCOVERY_SERVICE), "discovery.service"
    )
    mount_filter = mounts.MountFilter(
        mount_points_include=_pattern(entry, "mount_points_include", None),
        mount_points_exclude=_pattern(
            entry, "mount_points_exclude", mounts.DEFAULT_MOUNT_POINTS_EXCLUDE
        ),
        fs_types_include=_pattern(entry, "fs_types_include", None),
        fs_types_exclude=_pattern(
            entry, "fs_types_exclude", mounts.DEFAULT_FS_TYPES_EXCLUDE
        ),
    )
    return Discovery(enabled, service, mount_filter)


def _pattern(
    entry: Mapping[str, object], name: str, default: str | None
) -> re.Pattern[str] | None:
    """Compile one filter pattern; an empty string or null disables it."""
    key = f"discovery.{name}"
    value = entry.get(name, default)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(
            f"{key}: must be a regular expression string, got {_type_name(value)}"
        )
    try:
        return re.compile(value)
    except re.error as error:
        raise ConfigError(f"{key}: invalid regular expression: {error}") from error


def _seconds(entry: Mapping[str, object], name: str, default: float) -> float:
    value = entry.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name}: must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {value!r}")
    return float(value)


def _mapping(value: object, key: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be a mapping, got {_type_name(value)}")
    return value


def _text(value: object, key: str) -> str:
    # A YAML scalar such as 2024 or yes is not a string; quoting it keeps the
    # label value the operator wrote.
    if not isinstance(value, str):
        raise ConfigError(
            f"{key}: must be a string, got {_type_name(value)}; quote the value"
        )
    if not value:
        raise ConfigError(f"{key}: must not be empty")
    return value


def _reject_unknown(
    entry: Mapping[object, object], key: str, allowed: tuple[str, ...]
) -> None:
    for name in entry:
        if name not in allowed:
            where = f"{key}.{name}" if key else str(name)
            raise ConfigError(
                f"{where}: unknown key; expected one of {', '.join(allowed)}"
            )


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__
