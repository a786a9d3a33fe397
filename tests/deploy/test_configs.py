"""The files under deploy/ and rules/ that users copy are valid and consistent.

Prometheus' and Alertmanager's own checkers (promtool 2.42 and amtool 0.25
from Debian 12) validate the shipped configurations and the configurations
the local stack renders from them; the Docker, Kubernetes and systemd files
are checked for the references and settings the product depends on.
"""

from __future__ import annotations

import configparser
import importlib.util
import secrets
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from conftest import require_binary
from e2e.stack import load_stack_config

from bridge.config import load_settings
from exporter.config import parse_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = REPO / "rules"
SHIPPED_RULES = sorted(RULES.glob("*.yml"))
stack_config = load_stack_config()


def load_script(path: Path) -> ModuleType:
    """Import a script under deploy/, which is not a package."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def yaml_files() -> list[Path]:
    return sorted(
        path
        for root in (DEPLOY, RULES)
        for pattern in ("*.yml", "*.yaml")
        for path in root.rglob(pattern)
    )


def load_all(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))


def run_checker(*command: str, cwd: Path | None = None) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=cwd
    )
    assert result.returncode == 0, (
        f"{' '.join(command)}:\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize(
    "path", yaml_files(), ids=lambda path: str(path.relative_to(REPO))
)
def test_yaml_file_parses(path: Path) -> None:
    documents = load_all(path)

    assert documents
    assert all(document is not None for document in documents)


def test_yaml_files_found() -> None:
    names = {path.name for path in yaml_files()}

    for expected in (
        "prometheus.yml",
        "alertmanager.yml",
        "docker-compose.yml",
        "webpaas-disk.rules.yml",
        "node-exporter-disk.rules.yml",
    ):
        assert expected in names


def test_shipped_prometheus_config_passes_promtool() -> None:
    promtool = require_binary("promtool")

    # rule_files are relative to the config file, so checking it also
    # checks the bundled rule file it loads.
    run_checker(
        promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")
    )


def test_shipped_rules_pass_promtool() -> None:
    promtool = require_binary("promtool")

    assert len(SHIPPED_RULES) == 2
    run_checker(promtool, "check", "rules", *map(str, SHIPPED_RULES))


@pytest.mark.parametrize(
    "path",
    [
        DEPLOY / "alertmanager" / "alertmanager.yml",
        DEPLOY / "docker" / "alertmanager.yml",
    ],
    ids=lambda path: str(path.relative_to(REPO)),
)
def test_alertmanager_config_passes_amtool(path: Path) -> None:
    amtool = require_binary("amtool")

    run_checker(amtool, "check-config", str(path))


@pytest.mark.parametrize(
    "path",
    [
        DEPLOY / "alertmanager" / "alertmanager.yml",
        DEPLOY / "docker" / "alertmanager.yml",
    ],
    ids=lambda path: str(path.relative_to(REPO)),
)
def test_alertmanager_config_keeps_all_clears(path: Path) -> None:
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    webhooks = [
        webhook
        for receiver in config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]
    group_by = config["route"]["group_by"]

    assert webhooks
    for webhook in webhooks:
        assert webhook["url"].endswith("/alertmanager")
        assert webhook["send_resolved"] is True
        assert webhook["http_config"]["authorization"]["credentials_file"]
    # An inhibited alert is never sent as resolved: no inhibition at all.
    assert "inhibit_rules" not in config
    # Warning and critical of one disk share a group.
    assert "severity" not in group_by
    assert "..." not in group_by
    for label in ("alertname", "instance", "service", "mountpoint", "device"):
        assert label in group_by


def test_docker_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    # Lay the rules out where the compose file mounts them.
    config = (DEPLOY / "docker" / "prometheus.yml").read_text(encoding="utf-8")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for rule_file in SHIPPED_RULES:
        (rules_dir / rule_file.name).write_bytes(rule_file.read_bytes())
    local = tmp_path / "prometheus.yml"
    local.write_text(config.replace("/etc/prometheus/rules/", f"{rules_dir}/"))

    run_checker(promtool, "check", "config", str(local))


@pytest.mark.parametrize("mode", ["normal", "demo"])
def test_stack_rendered_configs_pass_checkers(tmp_path: Path, mode: str) -> None:
    promtool = require_binary("promtool")
    amtool = require_binary("amtool")

    run_checker(
        sys.executable,
        str(DEPLOY / "local" / "stack_config.py"),
        f"--state-dir={tmp_path}",
        f"--mode={mode}",
        "--exporter-port=1",
        "--bridge-port=2",
        "--receiver-port=3",
        "--prometheus-port=4",
        "--alertmanager-port=5",
        f"--demo-disk={tmp_path / 'demo-disk'}",
    )

    run_checker(promtool, "check", "config", str(tmp_path / "prometheus.yml"))
    run_checker(amtool, "check-config", str(tmp_path / "alertmanager.yml"))
    for name in ("prometheus.yml", "alertmanager.yml", "bridge.yml", "exporter.yml"):
        assert (tmp_path / name).stat().st_mode & 0o077 == 0, name


def test_compressed_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    for source in SHIPPED_RULES:
        rules = yaml.safe_load(source.read_text(encoding="utf-8"))
        compressed = stack_config.compress_rule_groups(rules, "1s")
        (tmp_path / source.name).write_text(yaml.safe_dump(compressed))

    run_checker(
        promtool, "check", "rules", *(str(tmp_path / p.name) for p in SHIPPED_RULES)
    )


def test_compressed_rules_scale_every_duration() -> None:
    rules = {
        "groups": [
            {
                "name": "g",
                "interval": "5m",
                "rules": [
                    {
                        "alert": "A",
                        "expr": 'last_over_time(ALERTS{a="[x]"}[7m]) offset 1h',
                        "for": "10m",
                    }
                ],
            }
        ]
    }

    group = stack_config.compress_rule_groups(rules, "1s")["groups"][0]

    assert group["interval"] == "1s"
    assert group["rules"][0]["for"] == "2s"
    assert group["rules"][0]["expr"] == (
        'last_over_time(ALERTS{a="[x]"}[1400ms]) offset 12s'
    )


# --- Docker ------------------------------------------------------------------


def compose() -> dict[str, Any]:
    path = DEPLOY / "docker" / "docker-compose.yml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_compose_references_existing_files() -> None:
    base = DEPLOY / "docker"
    document = compose()

    for name, service in document["services"].items():
        build = service.get("build")
        if build is not None:
            context = (base / build["context"]).resolve()
            assert context.is_dir(), name
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = (
                volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            )
            if source.startswith("."):
                assert (base / source).resolve().exists(), f"{name}: {source}"
    for name, secret in document.get("secrets", {}).items():
        # Secrets are generated by the user, under an ignored directory.
        assert secret["file"].startswith("./secrets/"), name


def test_compose_binds_host_ports_to_loopback() -> None:
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_compose_alertmanager_has_no_cluster_listener() -> None:
    command = compose()["services"]["alertmanager"]["command"]

    assert "--cluster.listen-address=" in command


def test_dockerfile_copies_existing_paths() -> None:
    dockerfile = (DEPLOY / "docker" / "Dockerfile").read_text(encoding="utf-8")
    copies = [
        line.split()[1:-1]
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
    ]

    assert copies
    for sources in copies:
        for source in sources:
            assert (REPO / source).exists(), source


def test_compose_prometheus_targets_are_services() -> None:
    services = compose()["services"]
    config = yaml.safe_load(
        (DEPLOY / "docker" / "prometheus.yml").read_text(encoding="utf-8")
    )
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ] + [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]

    assert targets == ["exporter:9846", "alertmanager:9093"]
    for target in targets:
        assert target.split(":")[0] in services, target


def test_compose_bridge_config_loads(tmp_path: Path) -> None:
    settings = load_settings(
        with_secret_files(DEPLOY / "docker" / "bridge.yml", tmp_path), environ={}
    )

    # The compose command passes no --listen: the file must open the port
    # that compose publishes and Alertmanager's URL names.
    assert settings.listen == "0.0.0.0:9847"
    assert [item.id for item in settings.integrations] == ["local-receiver"]
    alertmanager = yaml.safe_load(
        (DEPLOY / "docker" / "alertmanager.yml").read_text(encoding="utf-8")
    )
    webhook = alertmanager["receivers"][0]["webhook_configs"][0]
    assert webhook["url"] == "http://bridge:9847/alertmanager"


def test_compose_exporter_config_loads() -> None:
    document = yaml.safe_load(
        (DEPLOY / "docker" / "exporter.yml").read_text(encoding="utf-8")
    )

    config = parse_config(document)

    assert config.discovery.enabled


def with_secret_files(path: Path, directory: Path) -> Path:
    """Copy a bridge config, its secret files replaced by temporary ones."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return write_with_secret_files(document, directory)


def write_with_secret_files(document: dict[str, Any], directory: Path) -> Path:
    for key in [key for key in document if key.endswith("_file")]:
        secret = directory / key
        secret.write_text(secrets.token_urlsafe(32))
        document[key] = str(secret)
    for item in document.get("integrations") or []:
        for key in [key for key in item if key.endswith("_file")]:
            secret = directory / f"{item['id']}-{key}"
            secret.write_text(secrets.token_urlsafe(32))
            item[key] = str(secret)
    local = directory / "bridge.yml"
    local.write_text(yaml.safe_dump(document))
    return local


# --- Kubernetes --------------------------------------------------------------


def kubernetes_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        objects.extend(document for document in load_all(path) if document)
    return objects


def test_kubernetes_manifests_have_every_part() -> None:
    kinds = {(item["kind"], item["metadata"]["name"]) for item in kubernetes_objects()}

    for expected in (
        ("Deployment", "webpaas-bridge"),
        ("Service", "webpaas-bridge"),
        ("DaemonSet", "webpaas-disk-exporter"),
        ("PrometheusRule", "webpaas-disk"),
        ("AlertmanagerConfig", "webpaas-bridge"),
    ):
        assert expected in kinds


def config_map(name: str) -> dict[str, str]:
    (item,) = [
        item
        for item in kubernetes_objects()
        if item["kind"] == "ConfigMap" and item["metadata"]["name"] == name
    ]
    return item["data"]


def test_kubernetes_bridge_config_loads(tmp_path: Path) -> None:
    document = yaml.safe_load(config_map("webpaas-bridge")["bridge.yml"])

    settings = load_settings(write_with_secret_files(document, tmp_path), environ={})

    # The Deployment passes no --listen; the Service targets this port.
    assert settings.listen == "0.0.0.0:9847"


def test_kubernetes_exporter_config_loads() -> None:
    document = yaml.safe_load(config_map("webpaas-disk-exporter")["exporter.yml"])

    config = parse_config(document)

    assert config.discovery.enabled


def test_kubernetes_objects_reference_each_other() -> None:
    objects = {
        (item["kind"], item["metadata"]["name"]): item for item in kubernetes_objects()
    }
    deployment = objects[("Deployment", "webpaas-bridge")]["spec"]
    service = objects[("Service", "webpaas-bridge")]["spec"]
    daemonset = objects[("DaemonSet", "webpaas-disk-exporter")]["spec"]
    route = objects[("AlertmanagerConfig", "webpaas-bridge")]["spec"]
    (container,) = deployment["template"]["spec"]["containers"]
    (webhook,) = route["receivers"][0]["webhookConfigs"]

    assert (
        service["selector"].items()
        <= deployment["template"]["metadata"]["labels"].items()
    )
    assert deployment["selector"]["matchLabels"].items() <= (
        deployment["template"]["metadata"]["labels"].items()
    )
    assert daemonset["selector"]["matchLabels"].items() <= (
        daemonset["template"]["metadata"]["labels"].items()
    )
    assert service["ports"][0]["targetPort"] in [
        port["name"] for port in container["ports"]
    ]
    assert webhook["url"] == (
        f"http://webpaas-bridge.webpaas-health.svc:{service['ports'][0]['port']}"
        "/alertmanager"
    )
    # The token Alertmanager sends is the one the bridge reads.
    assert (
        webhook["httpConfig"]["authorization"]["credentials"]["name"]
        == (deployment["template"]["spec"]["volumes"][1]["secret"]["secretName"])
    )


def test_kubernetes_routes_group_like_shipped_config() -> None:
    shipped = yaml.safe_load(
        (DEPLOY / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8")
    )
    (config,) = [
        item for item in kubernetes_objects() if item["kind"] == "AlertmanagerConfig"
    ]

    assert config["spec"]["route"]["groupBy"] == shipped["route"]["group_by"]


def test_prometheusrule_matches_bundled_rules() -> None:
    rules = yaml.safe_load(
        (RULES / "webpaas-disk.rules.yml").read_text(encoding="utf-8")
    )
    (rule,) = [
        item for item in kubernetes_objects() if item["kind"] == "PrometheusRule"
    ]

    assert rule["spec"]["groups"] == rules["groups"], (
        "run .venv/bin/python deploy/kubernetes/generate_prometheusrule.py"
    )


def test_prometheusrule_is_generator_output() -> None:
    generator = load_script(DEPLOY / "kubernetes" / "generate_prometheusrule.py")

    assert generator.TARGET.read_text(encoding="utf-8") == generator.render()


def test_alertmanagerconfig_keeps_all_clears() -> None:
    (config,) = [
        item for item in kubernetes_objects() if item["kind"] == "AlertmanagerConfig"
    ]
    route = config["spec"]["route"]
    webhooks = [
        webhook
        for receiver in config["spec"]["receivers"]
        for webhook in receiver.get("webhookConfigs", [])
    ]

    assert "severity" not in route["groupBy"]
    assert "inhibitRules" not in config["spec"]
    assert webhooks
    for webhook in webhooks:
        assert webhook["sendResolved"] is True
        assert webhook["httpConfig"]["authorization"]["credentials"]["key"]


# --- systemd -----------------------------------------------------------------

UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_systemd_unit_passes_verify(unit: Path, tmp_path: Path) -> None:
    systemd_analyze = require_binary("systemd-analyze")
    # The units name the documented install prefix; point them at this
    # checkout's virtual environment so that the executables exist.
    local = tmp_path / unit.name
    local.write_text(
        unit.read_text(encoding="utf-8").replace(
            "/opt/webpaas-health/bin/", f"{Path(sys.executable).parent}/"
        )
    )

    run_checker(systemd_analyze, "verify", "--man=no", str(local))


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_systemd_unit_listens_on_loopback(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(unit.read_text(encoding="utf-8"))
    command = parser["Service"]["ExecStart"]

    assert "--listen 127.0.0.1:" in " ".join(command.split())
    assert parser["Service"]["DynamicUser"] == "yes"


def test_systemd_units_cover_both_services() -> None:
    assert [unit.name for unit in UNITS] == [
        "webpaas-bridge.service",
        "webpaas-disk-exporter.service",
    ]
