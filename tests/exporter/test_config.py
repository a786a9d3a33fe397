"""Tests of configuration loading and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter import mounts
from exporter.config import ExporterConfig, load_config, parse_config
from exporter.errors import ConfigError

EXAMPLE = Path(__file__).parents[2] / "deploy" / "exporter" / "exporter.example.yml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exporter.yml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)

    assert config.labels == {"project": "shop", "environment": "production"}
    assert [service.name for service in config.services] == ["web", "database"]
    assert config.services[1].paths == ("/var/lib/postgresql",)
    assert config.discovery.enabled
    assert config.discovery.service == "host"
    assert config.statvfs_timeout_seconds == 2.0
    assert config.collect_timeout_seconds == 5.0


def test_empty_config_equals_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "# nothing set\n"))

    assert config == ExporterConfig()
    assert config.discovery.filter.mount_points_exclude is not None
    assert config.discovery.filter.mount_points_exclude.pattern == (
        mounts.DEFAULT_MOUNT_POINTS_EXCLUDE
    )


def test_service_paths_are_normalized() -> None:
    config = parse_config({"services": [{"name": "a", "paths": ["//srv/a/./b/"]}]})

    assert config.services[0].paths == ("/srv/a/b",)


def test_empty_pattern_disables_default_exclude() -> None:
    config = parse_config({"discovery": {"fs_types_exclude": ""}})

    assert config.discovery.filter.fs_types_exclude is None
    assert config.discovery.filter.mount_points_exclude is not None


def test_include_pattern_is_compiled() -> None:
    config = parse_config({"discovery": {"fs_types_include": "^ext4$"}})

    pattern = config.discovery.filter.fs_types_include
    assert pattern is not None
    assert pattern.search("ext4")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # the top level must be a mapping
        ("- a\n", "the top level: must be a mapping, got list"),
        ("colour: red\n", "colour: unknown key"),
        ("labels: [a]\n", "labels: must be a mapping"),
        ("labels:\n  2x: a\n", "labels.2x: invalid label name"),
        ("labels:\n  __x: a\n", "labels.__x: label names starting with '__'"),
        ("labels:\n  service: a\n", "labels.service: the exporter sets this label"),
        ("labels:\n  fstype: a\n", "labels.fstype: the exporter sets this label"),
        # an unquoted year is an int in YAML
        ("labels:\n  year: 2026\n", "labels.year: must be a string, got int"),
        ("labels:\n  env: ''\n", "labels.env: must not be empty"),
        ("services: {}\n", "services: must be a list, got dict"),
        ("services:\n  - paths: [/a]\n", "services[0].name: missing"),
        ("services:\n  - name: a\n", "services[0].paths: must be a non-empty list"),
        ("services:\n  - name: a\n    paths: []\n", "services[0].paths: must be a"),
        (
            "services:\n  - name: a\n    paths: [/a]\n    owner: me\n",
            "services[0].owner: unknown key",
        ),
        (
            "services:\n  - name: a\n    paths: [/a, data]\n",
            "services[0].paths[1]: must be an absolute path, got 'data'",
        ),
        (
            'services:\n  - name: a\n    paths: ["/a\\0b"]\n',
            "services[0].paths[0]: must not contain a NUL character",
        ),
        (
            "services:\n  - name: a\n    paths: [/a, /a/]\n",
            "services[0].paths[1]: duplicate path '/a'",
        ),
        (
            "services:\n  - name: a\n    paths: [/a]\n  - name: a\n    paths: [/b]\n",
            "services[1].name: duplicate service name 'a'",
        ),
        ("discovery: yes\n", "discovery: must be a mapping, got bool"),
        ("discovery:\n  enabled: 'no'\n", "discovery.enabled: must be true or false"),
        ("discovery:\n  service: 7\n", "discovery.service: must be a string"),
        ("discovery:\n  include: x\n", "discovery.include: unknown key"),
        (
            "discovery:\n  mount_points_include: '('\n",
            "discovery.mount_points_include: invalid regular expression",
        ),
        (
            "discovery:\n  fs_types_exclude: [a]\n",
            "discovery.fs_types_exclude: must be a regular expression string",
        ),
        ("statvfs_timeout_seconds: fast\n", "statvfs_timeout_seconds: must be a"),
        ("statvfs_timeout_seconds: 0\n", "statvfs_timeout_seconds: must be greater"),
        ("collect_timeout_seconds: .nan\n", "collect_timeout_seconds: must be greater"),
        ("collect_timeout_seconds: true\n", "collect_timeout_seconds: must be a"),
        (
            "statvfs_timeout_seconds: 6\n",
            "statvfs_timeout_seconds: 6 is longer than collect_timeout_seconds (5)",
        ),
        # a key given twice would otherwise keep the last value silently
        ("labels:\n  a: x\n  a: y\n", "duplicate key 'a'"),
        ("labels: [\n", "invalid YAML in config file"),
    ],
)
def test_invalid_config_names_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))

    assert message in str(caught.value)


def test_missing_config_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.yml"):
        load_config(tmp_path / "missing.yml")
