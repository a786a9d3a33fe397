"""Tests of ``webpaas deliveries:*`` against a running bridge and fake targets.

A dead letter is made the way it happens in production: an alert comes in
through ``POST /alertmanager``, and the target rejects the notification for
good. The test then fixes the fake, retries the dead letter with the CLI
and checks that the target received it.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2e.processes import free_port, wait_for

from cli.running_bridge import (
    ALERTMANAGER_TOKEN,
    SECRETS,
    SHARED_KEY,
    SLACK_TOKEN,
    Bridge,
    Webpaas,
)

EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CREDENTIAL = 5
EXIT_NOT_FOUND = 6
ADDED = re.compile(r"^added integration ([0-9a-f]{12}) ", re.MULTILINE)


@pytest.fixture
def added(webpaas: Webpaas) -> Iterator[Callable[..., str]]:
    """Add an integration without a live check; delete it after the test."""
    ids: list[str] = []

    def add(*options: str) -> str:
        result = webpaas.run("integration:add", *options, "--no-check")
        assert result.exit_code == 0, result.stdout + result.stderr
        match = ADDED.search(result.stdout)
        assert match, result.stdout
        ids.append(match.group(1))
        return match.group(1)

    yield add
    for integration_id in ids:
        webpaas.run("integration:delete", integration_id)


def send_alert(bridge: Bridge, mountpoint: str, severity: str = "warning") -> None:
    """Post one firing alert for a disk, as Alertmanager's webhook sends it."""
    message = {
        "version": "4",
        "status": "firing",
        "receiver": "bridge",
        "groupKey": "{}:{}",
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "LowDiskSpace",
                    "project": "shop",
                    "environment": "main",
                    "service": "db",
                    "mountpoint": mountpoint,
                    "severity": severity,
                },
                "annotations": {
                    "free_percent": "14.2" if severity == "warning" else "7.5"
                },
                "startsAt": "2026-12-04T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
            }
        ],
    }
    request = urllib.request.Request(
        f"{bridge.url}/alertmanager",
        data=json.dumps(message).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {ALERTMANAGER_TOKEN}",
        },
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def deliveries_json(webpaas: Webpaas, *options: str) -> list[dict[str, Any]]:
    result = webpaas.run("deliveries:list", "--format=json", *options)
    assert result.exit_code == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)["deliveries"]
    return rows


def rows_for(webpaas: Webpaas, integration_id: str) -> list[dict[str, Any]]:
    return [
        row
        for row in deliveries_json(webpaas)
        if row["integration_id"] == integration_id
    ]


def wait_for_status(
    webpaas: Webpaas, integration_id: str, status: str
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        rows = [
            row for row in rows_for(webpaas, integration_id) if row["status"] == status
        ]
        return rows[0] if rows else None

    row: dict[str, Any] = wait_for(
        found, timeout=15, what=f"a {status} delivery to {integration_id}"
    )  # type: ignore[assignment]
    return row


def webhook_dead_letter(
    webpaas: Webpaas,
    bridge: Bridge,
    added: Callable[..., str],
    mountpoint: str,
    body: str,
) -> tuple[str, dict[str, Any]]:
    """Add a webhook integration and make a warning for ``mountpoint`` a dead letter.

    The receiver responds to that warning with HTTP 400 and ``body``. Returns
    the integration id and the dead letter's row.
    """
    integration_id = added(
        "--type",
        "health.webhook",
        "--url",
        f"{bridge.webhook.url}/hooks{mountpoint}",
        "--shared-key",
        SHARED_KEY,
    )
    bridge.webhook.fail_next(status=400, body=body)
    send_alert(bridge, mountpoint)
    return integration_id, wait_for_status(webpaas, integration_id, "dead")


def test_webhook_400_dead_letter_retried_and_delivered(
    webpaas: Webpaas, bridge: Bridge, added: Callable[..., str]
) -> None:
    integration_id, dead = webhook_dead_letter(
        webpaas, bridge, added, "/var/lib/mysql", "unknown disk"
    )

    listed = webpaas.run("deliveries:list", "--failed")
    retried = webpaas.run("deliveries:retry", str(dead["id"]))
    delivered = wait_for_status(webpaas, integration_id, "delivered")

    assert dead["last_error"] == "the webhook receiver answered HTTP 400: unknown disk"
    assert dead["attempts"] == 1
    assert listed.exit_code == 0, listed.stderr
    header, *lines = listed.stdout.splitlines()
    assert header.split()[:7] == [
        "ID",
        "STATUS",
        "ATTEMPTS",
        "INTEGRATION",
        "EVENT",
        "DISK",
        "CREATED",
    ]
    row = next(line for line in lines if line.startswith(f"{dead['id']} "))
    assert row.split()[:6] == [
        str(dead["id"]),
        "dead",
        "1",
        integration_id,
        dead["event_id"],
        "shop/main/db:/var/lib/mysql",
    ]
    assert row.endswith("the webhook receiver answered HTTP 400: unknown disk")
    assert retried.exit_code == 0, retried.stderr
    assert retried.stdout.startswith(
        f"delivery {dead['id']} is pending again; the bridge sends it now to "
        f"integration {integration_id}\n"
    )
    assert re.search(r"^status: +pending$", retried.stdout, re.MULTILINE)
    assert delivered["id"] == dead["id"]
    assert delivered["attempts"] == 2
    assert dead["event_id"] in [event["id"] for event in bridge.webhook.events]
    assert all(row["id"] != dead["id"] for row in deliveries_json(webpaas, "--failed"))


def test_slack_channel_not_found_retried_after_fix(
    webpaas: Webpaas, bridge: Bridge, added: Callable[..., str]
) -> None:
    integration_id = added(
        "--type", "health.slack", "--token", SLACK_TOKEN, "--channel", "#disks"
    )
    send_alert(bridge, "/srv/uploads")
    dead = wait_for_status(webpaas, integration_id, "dead")
    failed = deliveries_json(webpaas, "--failed")

    # The operator creates the channel, so the fake now accepts posts to it.
    bridge.slack.channels["#disks"] = "C0DISKS000"
    retried = webpaas.run("deliveries:retry", str(dead["id"]), "--format", "json")
    delivered = wait_for_status(webpaas, integration_id, "delivered")

    assert dead["last_error"] == (
        "Slack could not post to the channel: channel_not_found"
    )
    assert [row["id"] for row in failed if row["integration_id"] == integration_id] == [
        dead["id"]
    ]
    assert retried.exit_code == 0, retried.stderr
    assert json.loads(retried.stdout)["delivery"]["status"] == "pending"
    assert delivered["id"] == dead["id"]
    assert any(message["channel"] == "#disks" for message in bridge.slack.messages), (
        bridge.slack.messages
    )


def test_retry_after_later_delivery_exits_1(
    webpaas: Webpaas, bridge: Bridge, added: Callable[..., str]
) -> None:
    integration_id, dead = webhook_dead_letter(
        webpaas, bridge, added, "/srv/order", "not yet"
    )
    send_alert(bridge, "/srv/order", severity="critical")
    wait_for_status(webpaas, integration_id, "delivered")

    result = webpaas.run("deliveries:retry", str(dead["id"]))

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: webpaas-bridge at {bridge.url} kept dead letter '{dead['id']}': "
    )
    assert "would arrive out of order" in result.stderr
    still_dead = [
        row for row in rows_for(webpaas, integration_id) if row["status"] == "dead"
    ]
    assert [row["id"] for row in still_dead] == [dead["id"]]


def test_list_without_dead_letters(webpaas: Webpaas) -> None:
    result = webpaas.run("deliveries:list", "--failed", "--limit=5")

    assert result.exit_code == 0, result.stderr
    dead = deliveries_json(webpaas, "--failed")
    if dead:
        assert result.stdout.startswith("ID ")
    else:
        assert result.stdout == "no dead letters\n"


def test_retry_delivered_row_exits_6(
    webpaas: Webpaas, bridge: Bridge, added: Callable[..., str]
) -> None:
    integration_id = added(
        "--type",
        "health.webhook",
        "--url",
        f"{bridge.webhook.url}/hooks/ok",
        "--shared-key",
        SHARED_KEY,
    )
    send_alert(bridge, "/srv/delivered")
    delivered = wait_for_status(webpaas, integration_id, "delivered")

    result = webpaas.run("deliveries:retry", str(delivered["id"]))

    assert result.exit_code == EXIT_NOT_FOUND
    assert result.stderr == (
        f"Error: no dead letter has the id '{delivered['id']}' at {bridge.url}; "
        "list the dead letters with `webpaas deliveries:list --failed`\n"
    )


def test_retry_unknown_id_exits_6(webpaas: Webpaas) -> None:
    result = webpaas.run("deliveries:retry", "987654")

    assert result.exit_code == EXIT_NOT_FOUND
    assert "no dead letter has the id '987654'" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize("delivery_id", ["not-a-number", "0", "../integrations"])
def test_retry_id_not_a_number_exits_2(webpaas: Webpaas, delivery_id: str) -> None:
    result = webpaas.run("deliveries:retry", delivery_id)

    assert result.exit_code == EXIT_USAGE
    assert "Invalid value for 'ID'" in result.stderr
    assert delivery_id in result.stderr


@pytest.mark.parametrize(
    "arguments",
    [("deliveries:list",), ("deliveries:list", "--failed"), ("deliveries:retry", "1")],
)
@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WEBPAAS_ADMIN_TOKEN": None}, "no admin token given"),
        (
            {"WEBPAAS_ADMIN_TOKEN": "not-the-admin-token"},
            "rejected the admin token from WEBPAAS_ADMIN_TOKEN",
        ),
        # The Alertmanager credential never opens the admin API.
        (
            {"WEBPAAS_ADMIN_TOKEN": ALERTMANAGER_TOKEN},
            "rejected the admin token from WEBPAAS_ADMIN_TOKEN",
        ),
    ],
)
def test_deliveries_need_admin_token(
    webpaas: Webpaas,
    arguments: tuple[str, ...],
    env: dict[str, str | None],
    message: str,
) -> None:
    result = webpaas.run(*arguments, env=env)

    assert result.exit_code == EXIT_CREDENTIAL
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_unreachable_bridge_exits_3(webpaas: Webpaas) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = webpaas.run("deliveries:list", f"--api-url={url}")

    assert result.exit_code == EXIT_UNAVAILABLE
    assert result.stderr.startswith(f"Error: cannot reach webpaas-bridge at {url} (")


def test_no_secret_in_outputs_or_log(webpaas: Webpaas, bridge: Bridge) -> None:
    # Runs last in this module, after the dead letters above.
    webpaas.run("deliveries:list")
    webpaas.run("deliveries:list", "--format", "json")

    for output in webpaas.outputs:
        for secret in SECRETS:
            assert secret not in output
    log = bridge.log_text()
    for secret in SECRETS:
        assert secret not in log
