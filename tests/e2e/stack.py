"""The whole product as real processes: exporter, Prometheus, Alertmanager, bridge.

Everything listens on 127.0.0.1 on free ports, keeps its data in the test's
temporary directory, and runs on a clock compressed for tests: Prometheus
scrapes and evaluates every second, every duration in the bundled rule
groups shrinks by the same factor, and Alertmanager groups for one second.
The configuration files come from the same functions as the local stack's
(deploy/local/stack_config.py), so the shipped Alertmanager configuration
and rules are what runs here, with only their timing changed.
"""

from __future__ import annotations

import importlib.util
import json
import secrets
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN

from e2e.processes import Process, free_port, wait_for
from e2e.targets import Targets
from e2e.tmpfs import Tmpfs

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def load_stack_config() -> ModuleType:
    """Import deploy/local/stack_config.py, which is a script, not a package."""
    name = "webpaas_stack_config"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO / "deploy" / "local" / "stack_config.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the module runs.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


stack_config = load_stack_config()

# One second per step: each notification reaches its target a few seconds
# after the disk crosses a threshold.
TEST_TIMING = stack_config.Timing(
    scrape_interval="1s",
    evaluation_interval="1s",
    rule_group_interval="1s",
    group_wait="1s",
    group_interval="1s",
    repeat_interval="1h",
)
# How often Prometheus re-sends a firing or recently resolved alert; short
# so that a restarted Alertmanager learns the current alerts quickly.
RESEND_DELAY = "2s"
PAGERDUTY_ROUTING_KEY = "e2e0routing0key00000000000000000"


@dataclass
class Ports:
    exporter: int = field(default_factory=free_port)
    prometheus: int = field(default_factory=free_port)
    alertmanager: int = field(default_factory=free_port)
    bridge: int = field(default_factory=free_port)


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


class Stack:
    """Exporter, Prometheus, Alertmanager and bridge for one test."""

    def __init__(
        self, workdir: Path, disks: dict[str, Tmpfs], targets: Targets
    ) -> None:
        self.workdir = workdir
        self.disks = disks
        self.targets = targets
        self.ports = Ports()
        self.secrets = workdir / "secrets"
        self.secrets.mkdir(mode=0o700)
        for name in ("bridge-token", "admin-token"):
            path = self.secrets / name
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        (workdir / "logs").mkdir()
        self._write_configs()

        self.bridge = self._process(
            "bridge",
            [
                str(VENV_BIN / "webpaas-bridge"),
                "--config",
                str(workdir / "bridge.yml"),
                "--listen",
                f"127.0.0.1:{self.ports.bridge}",
                "--db",
                str(workdir / "bridge.db"),
            ],
            ready_url=f"{self.bridge_url}/readyz",
        )
        self.alertmanager = self._process(
            "alertmanager",
            [
                "prometheus-alertmanager",
                f"--config.file={workdir / 'alertmanager.yml'}",
                f"--storage.path={workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{self.ports.alertmanager}",
                # Empty: no gossip listener, which would bind every interface.
                "--cluster.listen-address=",
            ],
            ready_url=f"{self.alertmanager_url}/-/ready",
        )
        self.prometheus = self._process(
            "prometheus",
            [
                "prometheus",
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
                f"--rules.alert.resend-delay={RESEND_DELAY}",
            ],
            ready_url=f"{self.prometheus_url}/-/ready",
        )
        self.exporter = self._process(
            "exporter",
            [
                str(VENV_BIN / "webpaas-disk-exporter"),
                "--config",
                str(workdir / "exporter.yml"),
                "--listen",
                f"127.0.0.1:{self.ports.exporter}",
            ],
            ready_url=f"http://127.0.0.1:{self.ports.exporter}/metrics",
        )
        self.processes = [
            self.bridge,
            self.alertmanager,
            self.prometheus,
            self.exporter,
        ]

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.bridge}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    def _process(
        self,
        name: str,
        command: list[str],
        ready_url: str,
        env: dict[str, str] | None = None,
    ) -> Process:
        return Process(
            name, command, self.workdir / "logs" / f"{name}.log", ready_url, env
        )

    def bridge_config(self) -> dict[str, Any]:
        """Return the bridge's configuration: every target, fast retries."""
        config = stack_config.render_bridge(
            self.secrets, self.targets.webhook.url + "/hook"
        )
        webhook = config["integrations"][0]
        del webhook["shared_key_file"]
        webhook["shared_key"] = self.targets.webhook_shared_key
        config["integrations"] += [
            {
                "id": "slack",
                "type": "health.slack",
                "channel": "#alerts",
                "token": SLACK_TOKEN,
            },
            {
                "id": "pagerduty",
                "type": "health.pagerduty",
                "routing_key": PAGERDUTY_ROUTING_KEY,
            },
        ]
        config["slack_api_url"] = self.targets.slack.api_url
        config["pagerduty_events_url"] = self.targets.pagerduty.events_url
        # Retries a target asked for come quickly, so a test sees them.
        config["delivery"] = {
            "backoff_base_seconds": 0.2,
            "backoff_max_seconds": 1.0,
            "poll_seconds": 0.1,
        }
        return config

    def _write_configs(self) -> None:
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir()
        rule_files = []
        for source in stack_config.bundled_rule_files():
            rules = yaml.safe_load(source.read_text(encoding="utf-8"))
            compressed = stack_config.compress_rule_groups(
                rules, TEST_TIMING.rule_group_interval
            )
            target = rules_dir / source.name
            target.write_text(yaml.safe_dump(compressed, sort_keys=False))
            rule_files.append(target)

        prometheus = stack_config.render_prometheus(
            TEST_TIMING,
            exporter_target=f"127.0.0.1:{self.ports.exporter}",
            alertmanager_target=f"127.0.0.1:{self.ports.alertmanager}",
            rule_files=rule_files,
        )
        alertmanager = stack_config.render_alertmanager(
            f"http://127.0.0.1:{self.ports.bridge}/alertmanager",
            self.secrets / "bridge-token",
            TEST_TIMING,
        )
        exporter = stack_config.render_exporter(
            {name: [disk.mountpoint] for name, disk in self.disks.items()},
            discovery=False,
            labels={"environment": "e2e"},
        )
        for name, config in (
            ("prometheus.yml", prometheus),
            ("alertmanager.yml", alertmanager),
            ("exporter.yml", exporter),
            ("bridge.yml", self.bridge_config()),
        ):
            (self.workdir / name).write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self) -> None:
        """Start every part, the receiving end first."""
        for process in self.processes:
            process.start()

    def stop(self) -> None:
        """Stop every part by its pid, the sending end first."""
        for process in reversed(self.processes):
            process.stop()

    def logs(self) -> str:
        return "\n\n".join(
            f"===== {process.name} (last lines)\n{process.log_tail()}"
            for process in self.processes
        )

    # --- what Prometheus and Alertmanager see -------------------------------

    def prometheus_alerts(self, service: str) -> list[dict[str, Any]]:
        """Return Prometheus' pending and firing alerts for one service."""
        body = get_json(f"{self.prometheus_url}/api/v1/alerts")
        return [
            alert
            for alert in body["data"]["alerts"]
            if alert["labels"].get("service") == service
        ]

    def alertmanager_alerts(self, service: str) -> list[dict[str, Any]]:
        """Return Alertmanager's active alerts for one service."""
        alerts = get_json(f"{self.alertmanager_url}/api/v2/alerts")
        return [alert for alert in alerts if alert["labels"].get("service") == service]

    def wait_for_firing(self, service: str, severity: str, timeout: float = 30) -> None:
        """Wait until Prometheus fires ``severity`` for the service's disk."""

        def firing() -> bool:
            return any(
                alert["state"] == "firing"
                and alert["labels"].get("alertname") == "LowDiskSpace"
                and alert["labels"].get("severity") == severity
                for alert in self.prometheus_alerts(service)
            )

        wait_for(firing, timeout, f"{severity} firing in Prometheus for {service}")

    def wait_for_resolved(self, service: str, timeout: float = 30) -> None:
        """Wait until Prometheus has no LowDiskSpace alert for the service."""

        def resolved() -> bool:
            return not any(
                alert["labels"].get("alertname") == "LowDiskSpace"
                for alert in self.prometheus_alerts(service)
            )

        wait_for(resolved, timeout, f"LowDiskSpace resolved for {service}")
