"""Secrets, a handle on the running bridge, and a runner for ``webpaas``.

Every secret that the CLI tests hand to the bridge or the CLI is listed in
`SECRETS`, so that a test can search any output, log or metric for all of
them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result
from e2e.processes import Process
from fakes.pagerduty import PagerDutyFake
from fakes.slack import SlackFake
from fakes.webhook_receiver import WebhookReceiver

from bridge.cli import main

ADMIN_TOKEN = "cli-admin-token-4e9b27d1c08f5a36"
ALERTMANAGER_TOKEN = "cli-alertmanager-token-93c1a7e5f2d4"
SLACK_TOKEN = "xoxb-7777-8888-CliSlackSecretTokenK4"
OTHER_SLACK_TOKEN = "xoxb-7777-9999-CliOtherSlackSecretM8"
UNKNOWN_SLACK_TOKEN = "xoxb-0000-0000-CliUnknownSlackSecretV2"
CONFIG_SLACK_TOKEN = "xoxb-7777-1111-CliConfigSlackSecretP6"
ROUTING_KEY = "CliR0utingKeySecretValue00000PD7"
OTHER_ROUTING_KEY = "CliOtherR0utingKeySecret00000PD9"
SHARED_KEY = "Y2xpLXRlc3Qtc2hhcmVkLWtleS1vZi0zMi1ieXRlcy1vcg"
SLACK_CHANNEL = "#alerts"
CONFIG_INTEGRATION_ID = "ops-config"

SECRETS = (
    ADMIN_TOKEN,
    ALERTMANAGER_TOKEN,
    SLACK_TOKEN,
    OTHER_SLACK_TOKEN,
    UNKNOWN_SLACK_TOKEN,
    CONFIG_SLACK_TOKEN,
    ROUTING_KEY,
    OTHER_ROUTING_KEY,
    SHARED_KEY,
)


@dataclass
class Bridge:
    """A running bridge and the fakes it sends to."""

    url: str
    db_path: Path
    log_path: Path
    process: Process
    slack: SlackFake
    pagerduty: PagerDutyFake
    webhook: WebhookReceiver

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Webpaas:
    """Runs ``webpaas`` commands in-process against the module's bridge.

    The environment names the bridge and the admin token, as an operator's
    shell would; ``run`` takes extra variables, and None removes one.
    """

    runner: CliRunner
    environment: dict[str, str | None]
    outputs: list[str]

    def run(
        self,
        *arguments: str,
        env: dict[str, str | None] | None = None,
        input: str | None = None,
    ) -> Result:
        result = self.runner.invoke(
            main,
            list(arguments),
            env={**self.environment, **(env or {})},
            input=input,
        )
        self.outputs.append(result.stdout + result.stderr)
        return result
