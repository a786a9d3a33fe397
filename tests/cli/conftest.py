"""A running webpaas-bridge process and fake targets for the CLI tests.

Each test module gets one bridge: a real ``python -m bridge.server`` on a
free port of 127.0.0.1 with a temporary store and tokens in its environment.
Its config file declares one Slack integration. Slack, PagerDuty and a
signing webhook receiver run as local fake servers. The bridge's stdout and
stderr go to a log file that the tests search for secrets.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from e2e.processes import Process, free_port
from fakes.pagerduty import PagerDutyFake
from fakes.slack import SlackFake
from fakes.webhook_receiver import WebhookReceiver

from cli.running_bridge import (
    ADMIN_TOKEN,
    ALERTMANAGER_TOKEN,
    CONFIG_INTEGRATION_ID,
    CONFIG_SLACK_TOKEN,
    OTHER_SLACK_TOKEN,
    SHARED_KEY,
    SLACK_CHANNEL,
    SLACK_TOKEN,
    Bridge,
    Webpaas,
)


@pytest.fixture(scope="module")
def fakes_running() -> Iterator[tuple[SlackFake, PagerDutyFake, WebhookReceiver]]:
    slack = SlackFake(
        tokens={SLACK_TOKEN, OTHER_SLACK_TOKEN, CONFIG_SLACK_TOKEN},
        channels={SLACK_CHANNEL: "C0ALERTS00", "#ops": "C0OPS00000"},
    )
    with slack, PagerDutyFake() as pagerduty, WebhookReceiver(SHARED_KEY) as webhook:
        yield slack, pagerduty, webhook


@pytest.fixture(scope="module")
def bridge(
    tmp_path_factory: pytest.TempPathFactory,
    fakes_running: tuple[SlackFake, PagerDutyFake, WebhookReceiver],
) -> Iterator[Bridge]:
    slack, pagerduty, webhook = fakes_running
    directory = tmp_path_factory.mktemp("bridge")
    config_path = directory / "bridge.yml"
    config_path.write_text(
        "integrations:\n"
        f"  - id: {CONFIG_INTEGRATION_ID}\n"
        "    type: health.slack\n"
        f"    channel: '{SLACK_CHANNEL}'\n"
        "    token_env: CONFIG_SLACK_TOKEN\n",
        encoding="utf-8",
    )
    port = free_port()
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WEBPAAS_")
    }
    environment.update(
        {
            "WEBPAAS_DB": str(directory / "state" / "bridge.db"),
            "WEBPAAS_LISTEN": f"127.0.0.1:{port}",
            "WEBPAAS_BRIDGE_TOKEN": ALERTMANAGER_TOKEN,
            "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN,
            "WEBPAAS_ALLOW_PRIVATE_TARGETS": "1",
            "WEBPAAS_SLACK_API_URL": slack.api_url,
            "WEBPAAS_PAGERDUTY_EVENTS_URL": pagerduty.events_url,
            "WEBPAAS_LOG_LEVEL": "debug",
            "CONFIG_SLACK_TOKEN": CONFIG_SLACK_TOKEN,
        }
    )
    url = f"http://127.0.0.1:{port}"
    process = Process(
        "webpaas-bridge",
        [sys.executable, "-m", "bridge.server", "--config", str(config_path)],
        directory / "bridge.log",
        ready_url=f"{url}/healthz",
        env=environment,
    )
    process.start()
    try:
        yield Bridge(
            url=url,
            db_path=directory / "state" / "bridge.db",
            log_path=directory / "bridge.log",
            process=process,
            slack=slack,
            pagerduty=pagerduty,
            webhook=webhook,
        )
    finally:
        process.stop()


@pytest.fixture
def webpaas(bridge: Bridge) -> Webpaas:
    environment: dict[str, str | None] = {
        name: None for name in os.environ if name.startswith("WEBPAAS_")
    }
    environment.update(
        {"WEBPAAS_API_URL": bridge.url, "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    return Webpaas(CliRunner(), environment, [])
