"""The bridge's settings, from defaults, a YAML file, the environment and flags.

Each setting has one row in `SPECS`: its YAML key, its environment variable
and its default. A later source overrides an earlier one: defaults, then the
``--config`` file, then environment variables, then command-line flags.
Every secret can also come from a file (``<key>_file`` in YAML,
``<VARIABLE>_FILE`` in the environment), whose content is read with the
surrounding whitespace removed.

Integrations declared in the file's ``integrations:`` list become
`Integration` objects with ``source=config``; each secret field takes a
value, ``<field>_file`` or ``<field>_env``.

Errors raise `ConfigError` naming the key or variable and the fix; they never
quote the value of a secret.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import ConfigError
from bridge.integrations import (
    REQUIRED_FIELDS,
    SECRET_FIELDS,
    SETTING_FIELDS,
    TYPES,
    Integration,
    Source,
)

DEFAULT_DB = "/var/lib/webpaas-health/bridge.db"
DEFAULT_LISTEN = "127.0.0.1:9847"
ENV_PREFIX = "WEBPAAS_"
MIB = 1024 * 1024
DAY_SECONDS = 24 * 3600.0
# The pruner's cutoff, now minus the retention, must stay after year 1 to
# be a datetime. A century is past any retention worth having; 0 keeps all.
MAX_RETENTION_SECONDS = 100 * 365 * DAY_SECONDS

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_INTEGRATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Settings:
    """Everything the bridge reads at start; see `SPECS` for keys and defaults."""

    listen: str = DEFAULT_LISTEN
    db: str = DEFAULT_DB
    bridge_token: str | None = field(default=None, repr=False)
    bridge_username: str | None = None
    bridge_password: str | None = field(default=None, repr=False)
    admin_token: str | None = field(default=None, repr=False)
    insecure_no_auth: bool = False
    slack_api_url: str = "https://slack.com/api"
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    allow_private_targets: bool = False
    # 10,000 alerts of the node-exporter rules, with their annotations and a
    # generatorURL of about 3 KB each, make a body of about 40 MiB.
    max_request_bytes: int = 64 * MIB
    delivery_timeout_seconds: float = 10.0
    delivery_backoff_base_seconds: float = 2.0
    delivery_backoff_max_seconds: float = 600.0
    delivery_max_age_seconds: float = 24 * 3600.0
    delivery_max_in_flight: int = 16
    delivery_max_in_flight_per_integration: int = 8
    delivery_poll_seconds: float = 1.0
    store_retention_seconds: float = 30 * DAY_SECONDS
    log_level: str = "info"
    log_format: str = "logfmt"
    integrations: tuple[Integration, ...] = ()

    @property
    def has_inbound_credentials(self) -> bool:
        return bool(
            self.bridge_token or (self.bridge_username and self.bridge_password)
        )

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]


@dataclass(frozen=True)
class Spec:
    """One setting: where it is read from and how it is checked."""

    name: str
    yaml_key: str
    parse: Callable[[Any, str], Any]
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


def _string(value: Any, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ConfigError(f"{where} must be a string")
    text = str(value).strip()
    if not text:
        raise ConfigError(f"{where} must not be empty")
    return text


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{where} must be true or false (1 or 0 in the environment)")


def _number(minimum: float, integer: bool = False) -> Callable[[Any, str], Any]:
    kind = "an integer" if integer else "a number"

    def parse(value: Any, where: str) -> Any:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(value) if integer else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be {kind}, not {value!r}") from None
        if number < minimum:
            raise ConfigError(f"{where} must be at least {minimum:g}, not {number!r}")
        return number

    return parse


def _retention(value: Any, where: str) -> float:
    seconds = float(_number(0)(value, where))
    if not math.isfinite(seconds) or seconds > MAX_RETENTION_SECONDS:
        raise ConfigError(
            f"{where} must be at most {MAX_RETENTION_SECONDS:.0f} (100 years), "
            f"not {value!r}; use 0 to keep every row"
        )
    return seconds


def _url(value: Any, where: str) -> str:
    text = _string(value, where)
    if not re.match(r"https?://[^/\s]+", text):
        raise ConfigError(f"{where} must be an http or https URL with a host")
    return text.rstrip("/")


def _choice(*options: str) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        text = _string(value, where).lower()
        if text not in options:
            raise ConfigError(
                f"{where} must be one of {', '.join(options)}, not {text!r}"
            )
        return text

    return parse


def _listen(value: Any, where: str) -> str:
    text = _string(value, where)
    try:
        split_listen(text)
    except ValueError as exc:
        raise ConfigError(f"{where} {exc}") from None
    return text


def _secret(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string")
    return value.strip()


SPECS: tuple[Spec, ...] = (
    Spec("listen", "listen", _listen, "address to listen on, HOST:PORT"),
    Spec("db", "db", _string, "path of the SQLite store file"),
    Spec(
        "bridge_token", "bridge_token", _secret, "bearer token Alertmanager sends", True
    ),
    Spec(
        "bridge_username",
        "bridge_username",
        _string,
        "basic auth user Alertmanager sends",
    ),
    Spec(
        "bridge_password",
        "bridge_password",
        _secret,
        "basic auth password Alertmanager sends",
        True,
    ),
    Spec("admin_token", "admin_token", _secret, "bearer token of the admin API", True),
    Spec(
        "insecure_no_auth",
        "insecure_no_auth",
        _bool,
        "accept Alertmanager without a credential",
    ),
    Spec("slack_api_url", "slack_api_url", _url, "base URL of Slack's Web API"),
    Spec(
        "pagerduty_events_url",
        "pagerduty_events_url",
        _url,
        "PagerDuty Events API v2 URL",
    ),
    Spec(
        "allow_private_targets",
        "allow_private_targets",
        _bool,
        "let webhooks target loopback and private addresses",
    ),
    Spec(
        "max_request_bytes",
        "max_request_bytes",
        _number(1024, True),
        "largest webhook body",
    ),
    Spec(
        "delivery_timeout_seconds",
        "delivery.timeout_seconds",
        _number(0.1),
        "per attempt",
    ),
    Spec(
        "delivery_backoff_base_seconds",
        "delivery.backoff_base_seconds",
        _number(0.01),
        "first retry delay",
    ),
    Spec(
        "delivery_backoff_max_seconds",
        "delivery.backoff_max_seconds",
        _number(0.01),
        "longest retry delay",
    ),
    Spec(
        "delivery_max_age_seconds",
        "delivery.max_age_seconds",
        _number(1),
        "give up on a delivery this long after its event",
    ),
    Spec(
        "delivery_max_in_flight",
        "delivery.max_in_flight",
        _number(1, True),
        "deliveries sent at once in total",
    ),
    Spec(
        "delivery_max_in_flight_per_integration",
        "delivery.max_in_flight_per_integration",
        _number(1, True),
        "deliveries sent at once to one integration",
    ),
    Spec(
        "delivery_poll_seconds",
        "delivery.poll_seconds",
        _number(0.01),
        "how often the worker looks for due retries",
    ),
    Spec(
        "store_retention_seconds",
        "store.retention_seconds",
        _retention,
        "delete delivered and dead deliveries and their events after this; 0 never",
    ),
    Spec(
        "log_level",
        "log.level",
        _choice("debug", "info", "warning", "error"),
        "log level",
    ),
    Spec("log_format", "log.format", _choice("logfmt", "json"), "log line format"),
)
SPECS_BY_NAME = {spec.name: spec for spec in SPECS}


def split_listen(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port.

    Raises:
        ValueError: the text has no port or the port is not 0 to 65535.
    """
    host, colon, port = text.rpartition(":")
    if not colon or not host:
        raise ValueError(f"must be HOST:PORT, such as {DEFAULT_LISTEN}, not {text!r}")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"has an invalid port {port!r}; use 0 to 65535")
    return host.strip("[]"), int(port)


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from a YAML file, the environment and flag values.

    Args:
        config_file: path of the YAML file, or ``None`` for none.
        environ: the environment, ``os.environ`` by default.
        overrides: values from command-line flags by setting name; ``None``
            values are ignored.

    Raises:
        ConfigError: a value is invalid, or a secret file cannot be read.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    integrations: tuple[Integration, ...] = ()

    if config_file is not None:
        document = _read_yaml(Path(config_file))
        values.update(_from_yaml(document, str(config_file)))
        integrations = _integrations(
            document.get("integrations"), str(config_file), environ
        )

    values.update(_from_environ(environ))
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = SPECS_BY_NAME[name].parse(
                value, f"option --{name.replace('_', '-')}"
            )

    settings = Settings(**values, integrations=integrations)
    _check_consistency(settings)
    return settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the config file {str(path)!r}: {exc.strerror}"
        ) from exc
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not UTF-8 text") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(
            f"config file {str(path)!r} is not valid YAML{where}"
        ) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"config file {str(path)!r} must be a mapping of keys to values"
        )
    return document


def _flatten(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Flatten sections into dotted keys, rejecting unknown ones."""
    sections = {spec.yaml_key.split(".")[0] for spec in SPECS if "." in spec.yaml_key}
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if key == "integrations":
            continue
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{key}' must be a mapping")
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[str(key)] = value
    return flat


def _from_yaml(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    by_key = {spec.yaml_key: spec for spec in SPECS}
    secret_files = {f"{spec.yaml_key}_file": spec for spec in SPECS if spec.secret}
    values: dict[str, Any] = {}
    for key, value in _flatten(document, source).items():
        where = f"{source}: key '{key}'"
        if key in by_key:
            spec = by_key[key]
            values[spec.name] = spec.parse(value, where)
        elif key in secret_files:
            spec = secret_files[key]
            values[spec.name] = _read_secret_file(_string(value, where), where)
        else:
            known = ", ".join(sorted([*by_key, *secret_files, "integrations"]))
            raise ConfigError(f"{where} is unknown; known keys: {known}")
    return values


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for spec in SPECS:
        if spec.secret and environ.get(f"{spec.env}_FILE"):
            where = f"environment variable {spec.env}_FILE"
            values[spec.name] = _read_secret_file(environ[f"{spec.env}_FILE"], where)
        # An empty variable counts as unset, as in most shells' ${VAR:-default}.
        if environ.get(spec.env):
            values[spec.name] = spec.parse(
                environ[spec.env], f"environment variable {spec.env}"
            )
    return values


def _read_secret_file(path: str, where: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise ConfigError(
            f"{where}: cannot read the secret file {path!r}: {reason}"
        ) from None
    if not text:
        raise ConfigError(f"{where}: the secret file {path!r} is empty")
    return text


def _integrations(
    value: Any, source: str, environ: Mapping[str, str]
) -> tuple[Integration, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{source}: key 'integrations' must be a list")
    result: list[Integration] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        integration = _integration(item, f"{source}: integrations[{index}]", environ)
        if integration.id in seen:
            raise ConfigError(
                f"{source}: integrations[{index}]: id {integration.id!r} is "
                "used twice; give each integration its own id"
            )
        seen.add(integration.id)
        result.append(integration)
    return tuple(result)


def _integration(item: Any, where: str, environ: Mapping[str, str]) -> Integration:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with id, type and its fields")
    integration_id = item.get("id")
    if not isinstance(integration_id, str) or not _INTEGRATION_ID.fullmatch(
        integration_id
    ):
        raise ConfigError(
            f"{where}: key 'id' must be 1 to 64 letters, digits, '.', '_' or '-'"
        )
    kind = item.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}: key 'type' must be one of {', '.join(TYPES)}")

    secret_keys = {
        f"{name}{suffix}": name
        for name in SECRET_FIELDS[kind]
        for suffix in ("", "_file", "_env")
    }
    allowed = {"id", "type", *SETTING_FIELDS[kind], *secret_keys}
    for key in item:
        if key not in allowed:
            raise ConfigError(
                f"{where}: key {key!r} is unknown for {kind}; "
                f"known keys: {', '.join(sorted(allowed))}"
            )

    settings = {
        name: _string(item[name], f"{where}: key '{name}'")
        for name in SETTING_FIELDS[kind]
        if name in item
    }
    secrets: dict[str, str] = {}
    for name in SECRET_FIELDS[kind]:
        secret = _integration_secret(item, name, where, environ)
        if secret is not None:
            secrets[name] = secret

    for name in REQUIRED_FIELDS[kind]:
        if name not in settings and name not in secrets:
            hint = name
            if name in SECRET_FIELDS[kind]:
                hint = f"{name}, {name}_file or {name}_env"
            raise ConfigError(f"{where}: {kind} needs {hint}")
    return Integration(
        id=integration_id,
        type=kind,
        settings=settings,
        secrets=secrets,
        source=Source.CONFIG,
    )


def _integration_secret(
    item: Mapping[str, Any], name: str, where: str, environ: Mapping[str, str]
) -> str | None:
    given = [key for key in (name, f"{name}_file", f"{name}_env") if key in item]
    if len(given) > 1:
        raise ConfigError(f"{where}: give only one of {', '.join(given)}")
    if not given:
        return None
    key = given[0]
    place = f"{where}: key '{key}'"
    if key == name:
        return _secret(item[key], place)
    if key.endswith("_file"):
        return _read_secret_file(_string(item[key], place), place)
    variable = _string(item[key], place)
    if not environ.get(variable, "").strip():
        raise ConfigError(
            f"{place}: environment variable {variable} is not set or empty"
        )
    return environ[variable].strip()


def _check_consistency(settings: Settings) -> None:
    if bool(settings.bridge_username) != bool(settings.bridge_password):
        raise ConfigError(
            "bridge_username and bridge_password go together: set both "
            "(WEBPAAS_BRIDGE_USERNAME and WEBPAAS_BRIDGE_PASSWORD) or neither"
        )
    if settings.admin_token and settings.admin_token in (
        settings.bridge_token,
        settings.bridge_password,
    ):
        raise ConfigError(
            "admin_token must differ from the Alertmanager credential; "
            "generate a separate admin token"
        )
    if settings.delivery_backoff_max_seconds < settings.delivery_backoff_base_seconds:
        raise ConfigError(
            "delivery.backoff_max_seconds must be at least "
            "delivery.backoff_base_seconds"
        )
    retention = settings.store_retention_seconds
    max_age = settings.delivery_max_age_seconds
    if retention and retention < max_age:
        # Dead letters are pruned by the age of their created_at, and a
        # delivery can die max_age after it, so a shorter retention would
        # delete some dead letters as soon as they die.
        raise ConfigError(
            f"store.retention_seconds (WEBPAAS_STORE_RETENTION_SECONDS) is "
            f"{retention:g}, shorter than delivery.max_age_seconds ({max_age:g}); "
            f"set it to at least {max_age:g}, or to 0 to keep every row"
        )


def require_credentials(settings: Settings) -> list[str]:
    """Check that the bridge may start; return warnings to log.

    Raises:
        ConfigError: credentials are missing and ``insecure_no_auth`` is off.
    """
    if settings.insecure_no_auth:
        warnings = []
        if not settings.has_inbound_credentials:
            warnings.append(
                "insecure_no_auth is set and no Alertmanager credential is configured: "
                "anyone who can reach the bridge can post alerts"
            )
        if not settings.admin_token:
            warnings.append("no admin token is configured: the admin API is disabled")
        return warnings
    missing = []
    if not settings.has_inbound_credentials:
        missing.append(
            "an Alertmanager credential (WEBPAAS_BRIDGE_TOKEN or bridge_token, or "
            "bridge_username and bridge_password)"
        )
    if not settings.admin_token:
        missing.append("an admin token (WEBPAAS_ADMIN_TOKEN or admin_token)")
    if missing:
        raise ConfigError(
            "refusing to start without "
            + " and ".join(missing)
            + "; set them, or pass --insecure-no-auth (WEBPAAS_INSECURE_NO_AUTH=1) "
            "to run without"
        )
    return []
