"""Tests of settings loading: defaults, YAML, environment, flags, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import (
    DEFAULT_DB,
    MIB,
    SPECS_BY_NAME,
    Settings,
    load_settings,
    require_credentials,
    split_listen,
)
from bridge.errors import ConfigError
from bridge.integrations import Source

SECRET = "do-not-print-this-secret-value"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bridge.yml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(None, environ={})

    assert settings.listen == "127.0.0.1:9847"
    assert settings.db == DEFAULT_DB
    assert settings.slack_api_url == "https://slack.com/api"
    assert settings.pagerduty_events_url == "https://events.pagerduty.com/v2/enqueue"
    assert settings.max_request_bytes == 64 * MIB
    assert settings.allow_private_targets is False
    assert settings.bridge_token is None


def test_environment_alone_configures_bridge() -> None:
    environ = {
        "WEBPAAS_DB": "/tmp/x.db",
        "WEBPAAS_LISTEN": "127.0.0.1:1234",
        "WEBPAAS_BRIDGE_TOKEN": "bridge-token",
        "WEBPAAS_ADMIN_TOKEN": "admin-token",
        "WEBPAAS_SLACK_API_URL": "http://127.0.0.1:9/api/",
        "WEBPAAS_PAGERDUTY_EVENTS_URL": "http://127.0.0.1:9/enqueue",
        "WEBPAAS_ALLOW_PRIVATE_TARGETS": "1",
        "WEBPAAS_DELIVERY_TIMEOUT_SECONDS": "2.5",
    }

    settings = load_settings(None, environ=environ)

    assert settings.db == "/tmp/x.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 1234)
    assert settings.bridge_token == "bridge-token"
    assert settings.admin_token == "admin-token"
    assert settings.slack_api_url == "http://127.0.0.1:9/api"
    assert settings.pagerduty_events_url == "http://127.0.0.1:9/enqueue"
    assert settings.allow_private_targets is True
    assert settings.delivery_timeout_seconds == 2.5


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "listen: 127.0.0.1:1\ndb: /file.db\nlog:\n  level: debug\n")
    environ = {"WEBPAAS_LISTEN": "127.0.0.1:2", "WEBPAAS_DB": "/env.db"}

    settings = load_settings(path, environ=environ, overrides={"db": "/flag.db"})

    assert settings.listen == "127.0.0.1:2"
    assert settings.db == "/flag.db"
    assert settings.log_level == "debug"


def test_secret_files_from_yaml_and_env(tmp_path: Path) -> None:
    (tmp_path / "bridge-token").write_text("from-file\n")
    (tmp_path / "admin-token").write_text("admin-from-file\n")
    path = write(tmp_path, f"bridge_token_file: {tmp_path / 'bridge-token'}\n")
    environ = {"WEBPAAS_ADMIN_TOKEN_FILE": str(tmp_path / "admin-token")}

    settings = load_settings(path, environ=environ)

    assert settings.bridge_token == "from-file"
    assert settings.admin_token == "admin-from-file"


def test_delivery_section(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "delivery:\n  timeout_seconds: 3\n  backoff_base_seconds: 0.5\n"
        "  backoff_max_seconds: 60\n  max_age_seconds: 3600\n  max_in_flight: 2\n"
        "max_request_bytes: 2048\n",
    )

    settings = load_settings(path, environ={})

    assert settings.delivery_timeout_seconds == 3
    assert settings.delivery_backoff_base_seconds == 0.5
    assert settings.delivery_backoff_max_seconds == 60
    assert settings.delivery_max_age_seconds == 3600
    assert settings.delivery_max_in_flight == 2
    assert settings.max_request_bytes == 2048


def test_integrations_from_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * 43)
    path = write(
        tmp_path,
        f"""
integrations:
  - id: ops-slack
    type: health.slack
    channel: "#ops"
    token_env: SLACK_TOKEN
  - id: pd
    type: health.pagerduty
    routing_key: {"r" * 32}
  - id: hook
    type: health.webhook
    url: https://hooks.example/in
    shared_key_file: {tmp_path / "key"}
""",
    )

    settings = load_settings(path, environ={"SLACK_TOKEN": "xoxb-1-2-3"})

    slack, pagerduty, webhook = settings.integrations
    assert slack.id == "ops-slack"
    assert slack.source is Source.CONFIG
    assert slack.settings == {"channel": "#ops"}
    assert slack.secrets == {"token": "xoxb-1-2-3"}
    assert pagerduty.secrets == {"routing_key": "r" * 32}
    assert webhook.settings == {"url": "https://hooks.example/in"}
    assert webhook.secrets == {"shared_key": "k" * 43}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A misspelled key names itself and lists the known ones.
        ("listne: 1\n", "key 'listne' is unknown; known keys: admin_token"),
        ("delivery:\n  timeout: 1\n", "key 'delivery.timeout' is unknown"),
        ("delivery: 5\n", "key 'delivery' must be a mapping"),
        ("listen: nowhere\n", "key 'listen' must be HOST:PORT"),
        ("listen: 127.0.0.1:99999\n", "has an invalid port '99999'"),
        ("max_request_bytes: many\n", "key 'max_request_bytes' must be an integer"),
        ("delivery:\n  timeout_seconds: -1\n", "must be at least 0.1"),
        ("slack_api_url: ftp://x\n", "must be an http or https URL"),
        ("allow_private_targets: maybe\n", "must be true or false"),
        ("log:\n  format: xml\n", "must be one of logfmt, json"),
        ("- a\n- b\n", "must be a mapping of keys to values"),
        ("a: [\n", "is not valid YAML at line 2"),
        ("integrations: {}\n", "key 'integrations' must be a list"),
        ("integrations:\n  - type: health.slack\n", "key 'id' must be 1 to 64"),
        ("integrations:\n  - id: a\n    type: slack\n", "key 'type' must be one of"),
        (
            "integrations:\n  - id: a\n    type: health.webhook\n    channel: x\n",
            "key 'channel' is unknown for health.webhook",
        ),
        (
            "integrations:\n  - id: a\n    type: health.slack\n    channel: '#c'\n",
            "health.slack needs token, token_file or token_env",
        ),
        (
            "integrations:\n  - id: a\n    type: health.pagerduty\n"
            "    routing_key_env: NOT_SET_ANYWHERE\n",
            "environment variable NOT_SET_ANYWHERE is not set or empty",
        ),
        (
            "integrations:\n"
            "  - {id: a, type: health.webhook, url: 'https://x'}\n"
            "  - {id: a, type: health.webhook, url: 'https://y'}\n",
            "id 'a' is used twice",
        ),
        ("bridge_token_file: /nonexistent/token\n", "cannot read the secret file"),
    ],
)
def test_invalid_config_names_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})

    assert message in str(caught.value)


def test_errors_never_quote_secret(tmp_path: Path) -> None:
    texts = [
        f"bridge_token: [{SECRET}]\n",
        f"integrations:\n  - id: a\n    type: health.slack\n    token: {SECRET}\n"
        f"    token_env: X\n    channel: '#c'\n",
        f"admin_token: {SECRET}\nbridge_token: {SECRET}\n",
    ]
    for text in texts:
        path = write(tmp_path, text)

        with pytest.raises(ConfigError) as caught:
            load_settings(path, environ={"X": "y"})

        assert SECRET not in str(caught.value)


def test_env_error_names_variable() -> None:
    with pytest.raises(ConfigError, match="environment variable WEBPAAS_LISTEN"):
        load_settings(None, environ={"WEBPAAS_LISTEN": "nope"})


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match=r"cannot read the config file '/nope\.yml'"):
        load_settings("/nope.yml", environ={})


def test_basic_auth_needs_both_parts() -> None:
    with pytest.raises(ConfigError, match="bridge_username and bridge_password"):
        load_settings(None, environ={"WEBPAAS_BRIDGE_USERNAME": "am"})


def test_repr_hides_secrets() -> None:
    settings = Settings(bridge_token=SECRET, admin_token=SECRET, bridge_password=SECRET)

    assert SECRET not in repr(settings)


def test_credentials_required_to_start() -> None:
    with pytest.raises(ConfigError, match="--insecure-no-auth"):
        require_credentials(Settings())
    with pytest.raises(ConfigError, match="an admin token"):
        require_credentials(Settings(bridge_token="t"))

    assert require_credentials(Settings(bridge_token="t", admin_token="a")) == []


def test_insecure_flag_starts_with_warnings() -> None:
    warnings = require_credentials(Settings(insecure_no_auth=True))

    assert len(warnings) == 2
    assert "anyone who can reach the bridge" in warnings[0]
    assert "admin API is disabled" in warnings[1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9847", ("127.0.0.1", 9847)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_split_listen(text: str, expected: tuple[str, int]) -> None:
    assert split_listen(text) == expected


# One valid environment value per setting, with the value it must give.
ENVIRONMENT_VALUES = {
    "listen": ("127.0.0.1:1", "127.0.0.1:1"),
    "db": ("/tmp/every.db", "/tmp/every.db"),
    "bridge_token": ("bridge-token-every", "bridge-token-every"),
    "bridge_username": ("alertmanager", "alertmanager"),
    "bridge_password": ("password-every", "password-every"),
    "admin_token": ("admin-token-every", "admin-token-every"),
    "insecure_no_auth": ("yes", True),
    "slack_api_url": ("http://127.0.0.1:9/slack", "http://127.0.0.1:9/slack"),
    "pagerduty_events_url": ("http://127.0.0.1:9/pd", "http://127.0.0.1:9/pd"),
    "allow_private_targets": ("1", True),
    "max_request_bytes": ("4096", 4096),
    "delivery_timeout_seconds": ("3", 3.0),
    "delivery_backoff_base_seconds": ("0.5", 0.5),
    "delivery_backoff_max_seconds": ("30", 30.0),
    "delivery_max_age_seconds": ("60", 60.0),
    "delivery_max_in_flight": ("8", 8),
    "delivery_max_in_flight_per_integration": ("2", 2),
    "delivery_poll_seconds": ("0.5", 0.5),
    "store_retention_seconds": ("3600", 3600.0),
    "log_level": ("DEBUG", "debug"),
    "log_format": ("json", "json"),
}


def test_every_setting_has_environment_variable() -> None:
    environ = {
        SPECS_BY_NAME[name].env: text for name, (text, _) in ENVIRONMENT_VALUES.items()
    }

    settings = load_settings(None, environ=environ)

    assert set(ENVIRONMENT_VALUES) == set(SPECS_BY_NAME)
    for name, (_, expected) in ENVIRONMENT_VALUES.items():
        assert getattr(settings, name) == expected, name


def test_store_retention_default_and_yaml(tmp_path: Path) -> None:
    default = load_settings(None, environ={})
    disabled = load_settings(write(tmp_path, "store:\n  retention_seconds: 0\n"), {})

    assert default.store_retention_seconds == 30 * 24 * 3600
    assert disabled.store_retention_seconds == 0


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        # Shorter than the default delivery.max_age_seconds of 24 h.
        (
            {"WEBPAAS_STORE_RETENTION_SECONDS": "3600"},
            "store.retention_seconds (WEBPAAS_STORE_RETENTION_SECONDS) is 3600, "
            "shorter than delivery.max_age_seconds (86400); set it to at least "
            "86400, or to 0 to keep every row",
        ),
        # The same rule against a max age that was raised.
        (
            {
                "WEBPAAS_STORE_RETENTION_SECONDS": "172800",
                "WEBPAAS_DELIVERY_MAX_AGE_SECONDS": "259200",
            },
            "store.retention_seconds (WEBPAAS_STORE_RETENTION_SECONDS) is 172800, "
            "shorter than delivery.max_age_seconds (259200)",
        ),
        (
            {"WEBPAAS_STORE_RETENTION_SECONDS": "-1"},
            "environment variable WEBPAAS_STORE_RETENTION_SECONDS must be at "
            "least 0, not -1.0",
        ),
        (
            {"WEBPAAS_STORE_RETENTION_SECONDS": "30d"},
            "environment variable WEBPAAS_STORE_RETENTION_SECONDS must be a "
            "number, not '30d'",
        ),
        # Values a timedelta cannot subtract from now.
        (
            {"WEBPAAS_STORE_RETENTION_SECONDS": "inf"},
            "environment variable WEBPAAS_STORE_RETENTION_SECONDS must be at "
            "most 3153600000 (100 years), not 'inf'; use 0 to keep every row",
        ),
        (
            {"WEBPAAS_STORE_RETENTION_SECONDS": "nan"},
            "must be at most 3153600000 (100 years), not 'nan'",
        ),
        (
            {"WEBPAAS_STORE_RETENTION_SECONDS": "1e12"},
            "must be at most 3153600000 (100 years), not '1e12'",
        ),
    ],
)
def test_store_retention_invalid(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ=environ)

    assert message in str(caught.value)


def test_store_retention_equal_to_max_age_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "delivery:\n  max_age_seconds: 7200\nstore:\n  retention_seconds: 7200\n",
    )

    settings = load_settings(path, environ={})

    assert settings.store_retention_seconds == 7200
