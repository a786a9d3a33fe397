"""Render the local stack's configuration files into its state directory.

``stack.sh`` calls this module to write the configuration of every part of
the local stack: the exporter, Prometheus with the bundled rules,
Alertmanager routed to the bridge, and the bridge with the local webhook
receiver as its integration. The Prometheus and Alertmanager configurations
are the shipped ``deploy/prometheus/prometheus.yml`` and
``deploy/alertmanager/alertmanager.yml`` with the local addresses filled in.

Two timings exist. ``normal`` keeps the shipped intervals (rules evaluated
every 5 minutes). ``demo`` compresses time for the demonstration only:
Prometheus scrapes and evaluates every few seconds, every duration in the
rule groups shrinks by the same factor, and Alertmanager groups for a few
seconds. The shipped files are never changed; the end-to-end tests use the
same functions with their own, even shorter, intervals.

The command prints the name of every part whose file changed, one a line,
so that ``stack.sh`` reloads or restarts only those.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rules.render import Source as RuleSource
from rules.render import output_filename

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
SHIPPED_ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
RULES_DIR = REPO / "rules"

_DURATION_PART = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_DURATION_TOKEN = re.compile(r"(?:\d+(?:ms|y|w|d|h|m|s))+")
# "[7m]", "[1h:30s]" and "[5m:]" in PromQL; the durations inside get scaled.
_RANGE_SELECTOR = re.compile(r"\[\s*[0-9a-z]+\s*(?::\s*[0-9a-z]*\s*)?\]")
_OFFSET = re.compile(r"(\boffset\s+)((?:\d+(?:ms|y|w|d|h|m|s))+)")
_SECONDS_PER_UNIT = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


@dataclass(frozen=True)
class Timing:
    """Intervals of one run of the stack, as Prometheus durations."""

    # None keeps the shipped value.
    scrape_interval: str | None
    evaluation_interval: str | None
    # None keeps each rule group's own interval and durations.
    rule_group_interval: str | None
    group_wait: str | None
    group_interval: str | None
    repeat_interval: str | None


# The shipped files' own intervals.
NORMAL = Timing(None, None, None, None, None, None)
# About 5 s per step, so that each notification of the demo arrives within
# about 20 s of the disk crossing a threshold.
DEMO = Timing("5s", "5s", "5s", "2s", "5s", "1h")


def parse_duration(text: str) -> float:
    """Convert a Prometheus duration such as ``1h30m`` to seconds.

    Raises:
        ValueError: the text is not a Prometheus duration.
    """
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a Prometheus duration such as 5m or 1h30m")
    return sum(int(number) * _SECONDS_PER_UNIT[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    """Format seconds as a Prometheus duration, rounding to whole milliseconds."""
    milliseconds = round(seconds * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    return f"{milliseconds // 1000}s"


def _scale_durations(text: str, factor: float) -> str:
    """Scale every range selector, subquery step and offset in a PromQL text."""

    def scale(duration: str) -> str:
        return format_duration(parse_duration(duration) * factor)

    def scale_brackets(match: re.Match[str]) -> str:
        return _DURATION_TOKEN.sub(lambda token: scale(token[0]), match[0])

    text = _RANGE_SELECTOR.sub(scale_brackets, text)
    return _OFFSET.sub(lambda match: match[1] + scale(match[2]), text)


def compress_rule_groups(rules: dict[str, Any], group_interval: str) -> dict[str, Any]:
    """Return rule groups evaluated every ``group_interval``, all durations scaled.

    Each group's ``for`` durations and the range selectors and offsets in
    its expressions shrink by the same factor as its interval. The rules
    keep their shape on the shorter clock: an alert must stay true for as
    many evaluations as before, and a lookback window spans as many
    evaluations as before, which the bundled rules rely on to read their own
    previous state from ``ALERTS``.
    """
    compressed = copy.deepcopy(rules)
    target = parse_duration(group_interval)
    for group in compressed.get("groups", []):
        original = parse_duration(str(group.get("interval", "1m")))
        factor = target / original
        group["interval"] = group_interval
        for rule in group.get("rules", []):
            rule["expr"] = _scale_durations(str(rule["expr"]), factor)
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    scaled = parse_duration(str(rule[key])) * factor
                    rule[key] = format_duration(scaled)
    return compressed


def render_alertmanager(
    bridge_url: str, token_file: Path, timing: Timing, storage: Path | None = None
) -> dict[str, Any]:
    """Return the shipped Alertmanager configuration with local values.

    Every webhook receiver of the shipped file points at ``bridge_url`` with
    the bearer token read from ``token_file``. Timing overrides apply to the
    root route only; child routes inherit them.
    """
    del storage  # Alertmanager takes its storage path as a flag.
    config = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text(encoding="utf-8"))
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = bridge_url
            authorization = webhook.setdefault("http_config", {}).setdefault(
                "authorization", {}
            )
            authorization["type"] = "Bearer"
            authorization["credentials_file"] = str(token_file)

    route = config["route"]
    for key in ("group_wait", "group_interval", "repeat_interval"):
        value = getattr(timing, key)
        if value is not None:
            route[key] = value
            for child in route.get("routes", []):
                child.pop(key, None)
    return config


def render_prometheus(
    timing: Timing,
    exporter_target: str,
    alertmanager_target: str,
    rule_files: list[Path],
) -> dict[str, Any]:
    """Return the shipped Prometheus configuration with local values.

    Every scrape job of deploy/prometheus/prometheus.yml scrapes
    ``exporter_target``, alerts go to ``alertmanager_target``, and the rule
    files are given as absolute paths, because the file is written outside
    the repository.
    """
    config = yaml.safe_load(SHIPPED_PROMETHEUS.read_text(encoding="utf-8"))
    settings = config.setdefault("global", {})
    if timing.scrape_interval is not None:
        settings["scrape_interval"] = timing.scrape_interval
        # Prometheus rejects a scrape timeout longer than the interval.
        timeout = settings.get("scrape_timeout", "10s")
        if parse_duration(timeout) > parse_duration(timing.scrape_interval):
            settings["scrape_timeout"] = timing.scrape_interval
    if timing.evaluation_interval is not None:
        settings["evaluation_interval"] = timing.evaluation_interval

    config["rule_files"] = [str(path) for path in rule_files]
    config["alerting"] = {
        "alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]
    }
    for job in config.get("scrape_configs", []):
        job["static_configs"] = [{"targets": [exporter_target]}]
    return config


def render_exporter(
    services: dict[str, list[Path]], discovery: bool, labels: dict[str, str]
) -> dict[str, Any]:
    """Return an exporter configuration.

    Args:
        services: service name to the paths whose filesystems it owns.
        discovery: whether to publish every other real mount as service ``host``.
        labels: static labels added to every sample.
    """
    config: dict[str, Any] = {"discovery": {"enabled": discovery}}
    if labels:
        config["labels"] = dict(labels)
    if services:
        config["services"] = [
            {"name": name, "paths": [str(path) for path in paths]}
            for name, paths in services.items()
        ]
    return config


def render_bridge(
    secrets: Path, receiver_url: str, integrations: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Return a bridge configuration that reads every secret from a file.

    The local webhook receiver is declared as the integration
    ``local-receiver``; ``integrations`` adds more declarations after it.
    Webhooks may target loopback here because the receiver listens there.
    """
    return {
        "bridge_token_file": str(secrets / "bridge-token"),
        "admin_token_file": str(secrets / "admin-token"),
        "allow_private_targets": True,
        "integrations": [
            {
                "id": "local-receiver",
                "type": "health.webhook",
                "url": receiver_url,
                "shared_key_file": str(secrets / "webhook-shared-key"),
            },
            *(integrations or []),
        ],
    }


def bundled_rule_files() -> list[Path]:
    """Return the bundled rule file for this project's exporter.

    The node_exporter variant beside it reads metrics the stack does not
    scrape, so it is left out.
    """
    return [RULES_DIR / output_filename(RuleSource.WEBPAAS)]


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` with mode 0600 unless it already holds it."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".new")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)
    return True


def dump(config: dict[str, Any]) -> str:
    """Serialize a configuration the way every rendered file is written."""
    header = "# Written by deploy/local/stack.sh; edits are overwritten.\n"
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def main(argv: list[str] | None = None) -> int:
    """Render every configuration file; print the parts whose file changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--mode", choices=("normal", "demo"), default="normal")
    parser.add_argument("--exporter-port", type=int, required=True)
    parser.add_argument("--bridge-port", type=int, required=True)
    parser.add_argument("--receiver-port", type=int, required=True)
    parser.add_argument("--prometheus-port", type=int, required=True)
    parser.add_argument("--alertmanager-port", type=int, required=True)
    parser.add_argument(
        "--demo-disk", type=Path, help="scratch filesystem the demo fills"
    )
    args = parser.parse_args(argv)

    state = args.state_dir
    secrets = state / "secrets"
    timing = DEMO if args.mode == "demo" else NORMAL
    changed = []

    rule_files = bundled_rule_files()
    if timing.rule_group_interval is not None:
        demo_rules = []
        for source in rule_files:
            rules = yaml.safe_load(source.read_text(encoding="utf-8"))
            compressed = compress_rule_groups(rules, timing.rule_group_interval)
            target = state / "rules" / source.name
            if write_if_changed(target, dump(compressed)):
                changed.append("rules")
            demo_rules.append(target)
        rule_files = demo_rules

    demo_services = {}
    if args.mode == "demo" and args.demo_disk is not None:
        demo_services["demo"] = [args.demo_disk]
    exporter = render_exporter(
        demo_services, discovery=True, labels={"environment": "local"}
    )
    if write_if_changed(state / "exporter.yml", dump(exporter)):
        changed.append("exporter")

    prometheus = render_prometheus(
        timing,
        exporter_target=f"127.0.0.1:{args.exporter_port}",
        alertmanager_target=f"127.0.0.1:{args.alertmanager_port}",
        rule_files=rule_files,
    )
    if (
        write_if_changed(state / "prometheus.yml", dump(prometheus))
        or "rules" in changed
    ):
        changed.append("prometheus")

    alertmanager = render_alertmanager(
        f"http://127.0.0.1:{args.bridge_port}/alertmanager",
        secrets / "bridge-token",
        timing,
    )
    if write_if_changed(state / "alertmanager.yml", dump(alertmanager)):
        changed.append("alertmanager")

    bridge = render_bridge(secrets, f"http://127.0.0.1:{args.receiver_port}/webhook")
    if write_if_changed(state / "bridge.yml", dump(bridge)):
        changed.append("bridge")

    for name in dict.fromkeys(changed):
        if name != "rules":
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
