"""No secret shows anywhere after a busy run of the real bridge.

One run of ``webpaas-bridge`` does what leaks secrets elsewhere. It adds
integrations through the ``webpaas`` CLI (valid, invalid and rejected
tokens), delivers to Slack, PagerDuty and a signed webhook, and turns a
revoked token into dead letters. It also gets requests that present one
credential where another belongs. Then everything a person or a scraper
can see is searched for each secret: the log (debug level, JSON lines),
every HTTP response with its headers, every CLI output, ``/metrics`` and
the start-up errors of misconfigured bridges.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from e2e.processes import Process, free_port, wait_for
from fakes.pagerduty import PagerDutyFake
from fakes.slack import SlackFake
from fakes.webhook_receiver import WebhookReceiver

from bridge.cli import main as webpaas
from reliability.inprocess import firing_message

pytestmark = pytest.mark.slow

BRIDGE_TOKEN = "secret-run-bridge-token-71e9c2a4b6"
ADMIN_TOKEN = "secret-run-admin-token-0f8d6b4e2c"
BRIDGE_PASSWORD = "secret-run-basic-password-3a5c7e9g"
SLACK_TOKEN = "xoxb-4444-5555-SecretRunSlackTokenQ7"
CONFIG_SLACK_TOKEN = "xoxb-4444-6666-SecretRunConfigTokenZ2"
UNKNOWN_SLACK_TOKEN = "xoxb-4444-7777-SecretRunUnknownTokenW5"
MALFORMED_SLACK_TOKEN = "xoxq-SecretRunMalformedToken8"
ROUTING_KEY = "SecretRunR0utingKey0000000000PD1"
SHARED_KEY = "c2VjcmV0LXJ1bi1zaGFyZWQta2V5LW9mLTMyLWJ5dGVzIQ"
SECRETS = {
    "bridge token": BRIDGE_TOKEN,
    "admin token": ADMIN_TOKEN,
    "basic auth password": BRIDGE_PASSWORD,
    "Slack token": SLACK_TOKEN,
    "config Slack token": CONFIG_SLACK_TOKEN,
    "unknown Slack token": UNKNOWN_SLACK_TOKEN,
    "malformed Slack token": MALFORMED_SLACK_TOKEN,
    "routing key": ROUTING_KEY,
    "shared key": SHARED_KEY,
}


def bridge_environment(directory: Path, port: int, **extra: str) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if "WEBPAAS_" not in name
    }
    environment.update(
        {
            "WEBPAAS_DB": str(directory / "bridge.db"),
            "WEBPAAS_LISTEN": f"127.0.0.1:{port}",
            "WEBPAAS_BRIDGE_TOKEN": BRIDGE_TOKEN,
            "WEBPAAS_BRIDGE_USERNAME": "alertmanager",
            "WEBPAAS_BRIDGE_PASSWORD": BRIDGE_PASSWORD,
            "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN,
            "WEBPAAS_ALLOW_PRIVATE_TARGETS": "1",
            "WEBPAAS_LOG_LEVEL": "debug",
            "WEBPAAS_LOG_FORMAT": "json",
            "WEBPAAS_DELIVERY_BACKOFF_BASE_SECONDS": "0.05",
            "WEBPAAS_DELIVERY_POLL_SECONDS": "0.05",
            "CONFIG_SLACK_TOKEN": CONFIG_SLACK_TOKEN,
            **extra,
        }
    )
    return environment


def start_up_errors(directory: Path) -> list[str]:
    """Return what bridges with bad settings print before they exit."""
    outputs = []
    for extra in (
        # The admin token may not equal an Alertmanager credential.
        {"WEBPAAS_ADMIN_TOKEN": BRIDGE_TOKEN},
        # A user name without its password.
        {"WEBPAAS_BRIDGE_PASSWORD": ""},
        # An invalid setting beside the secrets. Errors quote the value of a
        # setting that is not a secret, so this one is no secret.
        {"WEBPAAS_DELIVERY_TIMEOUT_SECONDS": "soon"},
    ):
        completed = subprocess.run(
            [sys.executable, "-m", "bridge.server"],
            env=bridge_environment(directory, free_port(), **extra),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert completed.returncode == 2, completed.stderr
        outputs.append(completed.stdout + completed.stderr)
    return outputs


def test_no_secret_anywhere_after_a_run(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    def keep(name: str, response: httpx.Response) -> httpx.Response:
        seen[f"{name} {len(seen)}"] = f"{response.headers}\n{response.text}"
        return response

    slack = SlackFake(tokens={SLACK_TOKEN, CONFIG_SLACK_TOKEN})
    with slack, PagerDutyFake() as pagerduty, WebhookReceiver(SHARED_KEY) as hook:
        config = tmp_path / "bridge.yml"
        config.write_text(
            "integrations:\n"
            "  - {id: ops-config, type: health.slack, channel: '#alerts', "
            "token_env: CONFIG_SLACK_TOKEN}\n",
            encoding="utf-8",
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = Process(
            "webpaas-bridge",
            [sys.executable, "-m", "bridge.server", "--config", str(config)],
            tmp_path / "bridge.log",
            ready_url=f"{url}/healthz",
            env=bridge_environment(
                tmp_path,
                port,
                WEBPAAS_SLACK_API_URL=slack.api_url,
                WEBPAAS_PAGERDUTY_EVENTS_URL=pagerduty.events_url,
            ),
        )
        process.start()
        runner = CliRunner()
        cli_env = {name: None for name in os.environ if name.startswith("WEBPAAS_")}
        cli_env.update({"WEBPAAS_API_URL": url, "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN})

        def cli(*arguments: str) -> int:
            result = runner.invoke(webpaas, list(arguments), env=cli_env)
            seen[f"webpaas {arguments[0]} {len(seen)}"] = result.stdout + result.stderr
            return result.exit_code

        try:
            assert (
                cli(
                    "integration:add",
                    "--type=health.slack",
                    "--channel=#alerts",
                    f"--token={SLACK_TOKEN}",
                )
                == 0
            )
            assert (
                cli(
                    "integration:add",
                    "--type=health.pagerduty",
                    f"--routing-key={ROUTING_KEY}",
                )
                == 0
            )
            assert (
                cli(
                    "integration:add",
                    "--type=health.webhook",
                    f"--url={hook.url}/hook",
                    f"--shared-key={SHARED_KEY}",
                )
                == 0
            )
            # Well formed but unknown to Slack: stored, the live check fails.
            assert (
                cli(
                    "integration:add",
                    "--type=health.slack",
                    "--channel=#alerts",
                    f"--token={UNKNOWN_SLACK_TOKEN}",
                )
                == 0
            )
            # Malformed: rejected by the format check, nothing stored.
            assert (
                cli(
                    "integration:add",
                    "--type=health.slack",
                    "--channel=#alerts",
                    f"--token={MALFORMED_SLACK_TOKEN}",
                )
                != 0
            )
            for command in ("integration:list", "integration:validate"):
                cli(command)
                cli(command, "--format=json")

            bearer = {"Authorization": f"Bearer {BRIDGE_TOKEN}"}
            keep(
                "alertmanager",
                httpx.post(
                    f"{url}/alertmanager", json=firing_message("leak"), headers=bearer
                ),
            )
            wait_for(lambda: hook.events and pagerduty.events, 20, "deliveries")
            # A revoked token turns the next Slack deliveries into dead letters.
            slack.token_errors[SLACK_TOKEN] = "token_revoked"
            slack.token_errors[CONFIG_SLACK_TOKEN] = "invalid_auth"
            keep(
                "alertmanager",
                httpx.post(
                    f"{url}/alertmanager",
                    json=firing_message("leak", "critical"),
                    headers=bearer,
                ),
            )
            wait_for(
                lambda: (
                    len(
                        httpx.get(
                            f"{url}/api/v1/deliveries",
                            params={"status": "dead"},
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                        ).json()["deliveries"]
                    )
                    >= 2
                ),
                20,
                "dead letters",
            )
            cli("deliveries:list")
            cli("deliveries:list", "--failed", "--format=json")

            # Credentials presented where another one belongs.
            basic = base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()
            for path, authorization in (
                ("/alertmanager", f"Bearer {ADMIN_TOKEN}"),
                ("/alertmanager", f"Basic {basic}"),
                ("/api/v1/integrations", f"Bearer {BRIDGE_TOKEN}"),
                ("/api/v1/integrations", f"Bearer {SLACK_TOKEN}"),
            ):
                keep(
                    path,
                    httpx.post(
                        f"{url}{path}",
                        json={},
                        headers={"Authorization": authorization},
                    ),
                )
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            for path in (
                "/api/v1/integrations",
                "/api/v1/deliveries",
                "/api/v1/openapi.json",
                "/metrics",
                "/readyz",
                "/healthz",
            ):
                keep(path, httpx.get(f"{url}{path}", headers=admin))
            keep(
                "create",
                httpx.post(
                    f"{url}/api/v1/integrations",
                    headers=admin,
                    json={"type": "health.pagerduty", "routing_key": ROUTING_KEY + "x"},
                ),
            )
        finally:
            process.stop()
        seen["bridge log"] = process.log_path.read_text(encoding="utf-8")
    for index, output in enumerate(start_up_errors(tmp_path / "bad")):
        seen[f"start-up error {index}"] = output

    leaks = [
        f"{secret_name} in {source}"
        for source, text in seen.items()
        for secret_name, secret in SECRETS.items()
        if secret in text
    ]
    assert leaks == []
    assert len(seen) > 25
    assert "token_revoked" in seen["bridge log"]
