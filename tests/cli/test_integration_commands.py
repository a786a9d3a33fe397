"""Tests of ``webpaas integration:*`` against a running bridge and fake targets.

Each test leaves the bridge as it found it: what a test adds, it deletes.
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e.processes import free_port
from fakes.webhook_receiver import WebhookReceiver

from cli.running_bridge import (
    ADMIN_TOKEN,
    ALERTMANAGER_TOKEN,
    CONFIG_INTEGRATION_ID,
    OTHER_ROUTING_KEY,
    OTHER_SLACK_TOKEN,
    ROUTING_KEY,
    SECRETS,
    SHARED_KEY,
    SLACK_CHANNEL,
    SLACK_TOKEN,
    UNKNOWN_SLACK_TOKEN,
    Bridge,
    Webpaas,
)

ADDED = re.compile(r"^(added|updated) integration ([0-9a-f]{12}) \(", re.MULTILINE)

EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INVALID = 4
EXIT_CREDENTIAL = 5
EXIT_NOT_FOUND = 6
EXIT_READ_ONLY = 7


def added_id(output: str) -> str:
    match = ADDED.search(output)
    assert match, output
    return match.group(2)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


@pytest.fixture
def cleanup(webpaas: Webpaas) -> Iterator[list[str]]:
    """Ids to delete after the test, so that each test starts from the config."""
    ids: list[str] = []
    yield ids
    for integration_id in ids:
        webpaas.run("integration:delete", integration_id)


def add(webpaas: Webpaas, cleanup: list[str], *options: str) -> str:
    result = webpaas.run("integration:add", *options)
    assert result.exit_code == 0, result.stdout + result.stderr
    integration_id = added_id(result.stdout)
    cleanup.append(integration_id)
    return integration_id


def list_json(webpaas: Webpaas) -> list[dict[str, Any]]:
    result = webpaas.run("integration:list", "--format", "json")
    assert result.exit_code == 0, result.stderr
    integrations: list[dict[str, Any]] = json.loads(result.stdout)["integrations"]
    return integrations


# The full cycle ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("add_options", "update_options", "listed_text"),
    [
        (
            (
                "--type",
                "health.slack",
                "--token",
                SLACK_TOKEN,
                "--channel",
                SLACK_CHANNEL,
            ),
            ("--token", OTHER_SLACK_TOKEN, "--channel=#ops"),
            SLACK_CHANNEL,
        ),
        (
            ("--type=health.pagerduty", f"--routing-key={ROUTING_KEY}"),
            ("--routing-key", OTHER_ROUTING_KEY),
            "routing_key set",
        ),
        (
            (
                "--type",
                "health.webhook",
                "--url",
                "WEBHOOK_URL",
                "--shared-key",
                SHARED_KEY,
            ),
            ("--shared-key", SHARED_KEY),
            "/hooks/disk",
        ),
    ],
)
def test_full_cycle_leaks_no_secret(
    webpaas: Webpaas,
    bridge: Bridge,
    add_options: tuple[str, ...],
    update_options: tuple[str, ...],
    listed_text: str,
) -> None:
    webhook_url = f"{bridge.webhook.url}/hooks/disk"
    add_options = tuple(
        webhook_url if item == "WEBHOOK_URL" else item for item in add_options
    )

    added = webpaas.run("integration:add", *add_options)
    integration_id = added_id(added.stdout)
    listed = webpaas.run("integration:list")
    shown_one = webpaas.run("integration:get", integration_id)
    shown_json = webpaas.run("integration:get", integration_id, "--format", "json")
    validated = webpaas.run("integration:validate", integration_id)
    updated = webpaas.run("integration:update", integration_id, *update_options)
    validated_all = webpaas.run("integration:validate", "--format=json")
    deleted = webpaas.run("integration:delete", integration_id)
    after_delete = webpaas.run("integration:get", integration_id)

    assert added.exit_code == 0, added.stdout + added.stderr
    assert "live check: passed" in added.stdout
    assert listed.exit_code == 0
    assert integration_id in listed.stdout
    assert listed_text in listed.stdout
    assert shown_one.exit_code == 0
    assert re.search(rf"^id: +{integration_id}$", shown_one.stdout, re.MULTILINE)
    assert json.loads(shown_json.stdout)["id"] == integration_id
    assert validated.exit_code == 0, validated.stdout
    assert validated.stdout.endswith(": valid\n")
    assert updated.exit_code == 0, updated.stdout + updated.stderr
    assert f"updated integration {integration_id}" in updated.stdout
    assert validated_all.exit_code == 0, validated_all.stdout
    assert json.loads(validated_all.stdout)["valid"] is True
    assert deleted.exit_code == 0
    assert deleted.stdout == f"deleted integration {integration_id}\n"
    assert after_delete.exit_code == EXIT_NOT_FOUND

    for output in webpaas.outputs:
        assert_no_secret(output)
    assert_no_secret(bridge.log_text())
    with urllib.request.urlopen(f"{bridge.url}/metrics", timeout=5) as response:
        assert_no_secret(response.read().decode())


def test_live_checks_reached_the_fakes(
    webpaas: Webpaas, bridge: Bridge, cleanup: list[str]
) -> None:
    slack_before = len(bridge.slack.messages)
    pagerduty_before = len(bridge.pagerduty.events)
    webhook_before = len(bridge.webhook.events)

    add(
        webpaas,
        cleanup,
        "--type",
        "health.slack",
        "--token",
        SLACK_TOKEN,
        "--channel",
        SLACK_CHANNEL,
    )
    add(webpaas, cleanup, "--type", "health.pagerduty", "--routing-key", ROUTING_KEY)
    add(
        webpaas,
        cleanup,
        "--type",
        "health.webhook",
        "--url",
        f"{bridge.webhook.url}/hook",
        "--shared-key",
        SHARED_KEY,
    )

    assert len(bridge.slack.messages) > slack_before
    # A test trigger and its resolve.
    assert len(bridge.pagerduty.events) >= pagerduty_before + 2
    assert len(bridge.webhook.events) > webhook_before
    assert bridge.webhook.rejected == []


def test_store_file_is_private(
    webpaas: Webpaas, bridge: Bridge, cleanup: list[str]
) -> None:
    add(webpaas, cleanup, "--type", "health.pagerduty", "--routing-key", ROUTING_KEY)

    mode = stat.S_IMODE(bridge.db_path.stat().st_mode)
    # SQLite's write-ahead log and shared-memory files hold the same data.
    companions = {
        path.name: stat.S_IMODE(path.stat().st_mode)
        for path in bridge.db_path.parent.glob(f"{bridge.db_path.name}-*")
    }
    folder_mode = stat.S_IMODE(bridge.db_path.parent.stat().st_mode)

    assert mode == 0o600
    assert companions == {
        f"{bridge.db_path.name}-wal": 0o600,
        f"{bridge.db_path.name}-shm": 0o600,
    }
    assert folder_mode == 0o700


# Reads -----------------------------------------------------------------------


def test_list_marks_config_integration(webpaas: Webpaas) -> None:
    result = webpaas.run("integration:list")

    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "TYPE", "SOURCE", "DESTINATION", "SECRETS"]
    config_row = next(row for row in rows if row.startswith(CONFIG_INTEGRATION_ID))
    assert config_row.split()[:4] == [
        CONFIG_INTEGRATION_ID,
        "health.slack",
        "config",
        SLACK_CHANNEL,
    ]


def test_list_json_shows_secret_hints_only(webpaas: Webpaas) -> None:
    integrations = list_json(webpaas)

    config = next(item for item in integrations if item["id"] == CONFIG_INTEGRATION_ID)
    assert config["read_only"] is True
    assert config["token"]["set"] is True
    assert len(config["token"]["last4"]) == 4


def test_get_shows_secret_as_set(webpaas: Webpaas, cleanup: list[str]) -> None:
    integration_id = add(
        webpaas, cleanup, "--type", "health.pagerduty", "--routing-key", ROUTING_KEY
    )

    result = webpaas.run("integration:get", integration_id)

    assert result.exit_code == 0
    assert f"routing_key: set, ends in {ROUTING_KEY[-4:]}" in result.stdout
    assert "source:      api" in result.stdout


# Add and update ------------------------------------------------------------------


def test_add_invalid_format_exits_4(webpaas: Webpaas) -> None:
    before = list_json(webpaas)

    result = webpaas.run(
        "integration:add",
        "--type",
        "health.pagerduty",
        "--routing-key",
        "short-secret-key",
    )

    assert result.exit_code == EXIT_INVALID
    assert result.stderr.startswith(
        "Error: integration is invalid; nothing was stored\n"
    )
    assert "routing_key: must be 32 characters" in result.stderr
    assert "short-secret-key" not in result.stdout + result.stderr
    assert list_json(webpaas) == before


def test_add_failing_live_check_warns_and_exits_0(
    webpaas: Webpaas, cleanup: list[str]
) -> None:
    result = webpaas.run(
        "integration:add",
        "--type",
        "health.slack",
        "--token",
        UNKNOWN_SLACK_TOKEN,
        "--channel",
        SLACK_CHANNEL,
    )

    assert result.exit_code == 0
    cleanup.append(added_id(result.stdout))
    assert "live check: failed" in result.stdout
    assert "  token: " in result.stdout
    assert "invalid_auth" in result.stdout
    assert "warning: the integration is stored but does not work yet" in result.stderr
    assert UNKNOWN_SLACK_TOKEN not in result.stdout + result.stderr


def test_add_no_check_skips_live_check(
    webpaas: Webpaas, bridge: Bridge, cleanup: list[str]
) -> None:
    before = len(bridge.slack.messages)

    add(
        webpaas,
        cleanup,
        "--type",
        "health.slack",
        "--token",
        SLACK_TOKEN,
        "--channel",
        SLACK_CHANNEL,
        "--no-check",
    )

    assert len(bridge.slack.messages) == before
    assert "live check: skipped" in webpaas.outputs[-1]


def test_add_json_format(webpaas: Webpaas, cleanup: list[str]) -> None:
    result = webpaas.run(
        "integration:add",
        "--type",
        "health.pagerduty",
        "--routing-key",
        ROUTING_KEY,
        "--format",
        "json",
    )

    assert result.exit_code == 0
    answer = json.loads(result.stdout)
    cleanup.append(answer["integration"]["id"])
    assert answer["validation"] == {"valid": True, "live": True, "problems": []}


def test_add_secrets_from_file_and_stdin(
    webpaas: Webpaas, tmp_path: Path, cleanup: list[str]
) -> None:
    token_file = tmp_path / "slack.token"
    token_file.write_text(SLACK_TOKEN + "\n", encoding="utf-8")

    from_file = webpaas.run(
        "integration:add",
        "--type",
        "health.slack",
        f"--token-file={token_file}",
        "--channel",
        SLACK_CHANNEL,
    )
    from_stdin = webpaas.run(
        "integration:add",
        "--type",
        "health.pagerduty",
        "--routing-key-file",
        "-",
        input=ROUTING_KEY + "\n",
    )

    assert from_file.exit_code == 0, from_file.stderr
    assert from_stdin.exit_code == 0, from_stdin.stderr
    cleanup.extend([added_id(from_file.stdout), added_id(from_stdin.stdout)])
    assert "live check: passed" in from_file.stdout
    assert "live check: passed" in from_stdin.stdout


def test_update_keeps_omitted_secret(webpaas: Webpaas, cleanup: list[str]) -> None:
    integration_id = add(
        webpaas,
        cleanup,
        "--type",
        "health.slack",
        "--token",
        SLACK_TOKEN,
        "--channel",
        SLACK_CHANNEL,
    )

    result = webpaas.run("integration:update", integration_id, "--channel", "#ops")

    assert result.exit_code == 0, result.stderr
    assert "live check: passed" in result.stdout
    shown = json.loads(
        webpaas.run("integration:get", integration_id, "--format", "json").stdout
    )
    assert shown["channel"] == "#ops"
    assert shown["token"]["last4"] == SLACK_TOKEN[-4:]


def test_update_clear_shared_key(
    webpaas: Webpaas, bridge: Bridge, cleanup: list[str]
) -> None:
    integration_id = add(
        webpaas,
        cleanup,
        "--type",
        "health.webhook",
        "--url",
        f"{bridge.webhook.url}/hook",
        "--shared-key",
        SHARED_KEY,
        "--no-check",
    )

    result = webpaas.run(
        "integration:update", integration_id, "--clear-shared-key", "--no-check"
    )

    assert result.exit_code == 0, result.stderr
    shown = json.loads(
        webpaas.run("integration:get", integration_id, "--format", "json").stdout
    )
    assert shown["shared_key"] == {"set": False}


def test_update_field_of_other_type_exits_4(
    webpaas: Webpaas, cleanup: list[str]
) -> None:
    integration_id = add(
        webpaas,
        cleanup,
        "--type",
        "health.pagerduty",
        "--routing-key",
        ROUTING_KEY,
        "--no-check",
    )

    result = webpaas.run("integration:update", integration_id, "--channel", "#ops")

    assert result.exit_code == EXIT_INVALID
    assert "channel: is not a field of health.pagerduty" in result.stderr


# Validate ---------------------------------------------------------------------


def test_validate_invalid_exits_4_with_problems(
    webpaas: Webpaas, cleanup: list[str]
) -> None:
    integration_id = add(
        webpaas,
        cleanup,
        "--type",
        "health.slack",
        "--token",
        UNKNOWN_SLACK_TOKEN,
        "--channel",
        SLACK_CHANNEL,
        "--no-check",
    )

    single = webpaas.run("integration:validate", integration_id)
    all_results = webpaas.run("integration:validate")

    assert single.exit_code == EXIT_INVALID
    assert single.stdout.startswith(f"{integration_id} (health.slack): invalid\n")
    assert re.search(r"^  token: .*invalid_auth", single.stdout, re.MULTILINE)
    assert all_results.exit_code == EXIT_INVALID
    assert f"{integration_id} (health.slack): invalid" in all_results.stdout
    assert f"{CONFIG_INTEGRATION_ID} (health.slack): valid" in all_results.stdout


def test_validate_webhook_redirect_is_not_followed(
    webpaas: Webpaas, bridge: Bridge, cleanup: list[str]
) -> None:
    integration_id = add(
        webpaas,
        cleanup,
        "--type",
        "health.webhook",
        "--url",
        f"{bridge.webhook.url}/hook",
        "--shared-key",
        SHARED_KEY,
        "--no-check",
    )
    before = len(bridge.webhook.requests)
    # A public receiver that redirects to the metadata address; the bridge
    # must not follow, so nothing is ever sent there.
    bridge.webhook.fail_next(
        status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )

    result = webpaas.run("integration:validate", integration_id)

    assert result.exit_code == EXIT_INVALID
    assert (
        "  url: the test event was not delivered: the webhook receiver answered "
        "HTTP 302, a redirect; redirects are not followed, so configure the "
        "final URL\n"
    ) in result.stdout
    assert len(bridge.webhook.requests) == before + 1


def test_validate_all_valid_exits_0(webpaas: Webpaas) -> None:
    result = webpaas.run("integration:validate")

    assert result.exit_code == 0, result.stdout
    assert f"{CONFIG_INTEGRATION_ID} (health.slack): valid" in result.stdout


def test_validate_json_format(webpaas: Webpaas) -> None:
    result = webpaas.run(
        "integration:validate", CONFIG_INTEGRATION_ID, "--format", "json"
    )

    assert result.exit_code == 0
    assert json.loads(result.stdout)["stage"] == "live"


# Errors and exit codes ------------------------------------------------------------


@pytest.mark.parametrize(
    "arguments",
    [
        ("integration:get", "0123456789ab"),
        ("integration:update", "0123456789ab", "--channel", "#ops"),
        ("integration:delete", "0123456789ab"),
        ("integration:validate", "0123456789ab"),
    ],
)
def test_unknown_id_exits_6(webpaas: Webpaas, arguments: tuple[str, ...]) -> None:
    bridge_url = webpaas.environment["WEBPAAS_API_URL"]

    result = webpaas.run(*arguments)

    assert result.exit_code == EXIT_NOT_FOUND
    assert result.stderr == (
        f"Error: integration '0123456789ab' not found at {bridge_url}; "
        "list the ids with `webpaas integration:list`\n"
    )


@pytest.mark.parametrize("integration_id", [".", "..", "a/b", "../openapi.json", "_x"])
@pytest.mark.parametrize(
    "command", ["integration:get", "integration:delete", "integration:validate"]
)
def test_impossible_id_exits_6_without_request(
    webpaas: Webpaas, bridge: Bridge, command: str, integration_id: str
) -> None:
    # "." and ".." would otherwise reach the list route or the API root.
    result = webpaas.run(command, integration_id)

    assert result.exit_code == EXIT_NOT_FOUND, result.stdout + result.stderr
    assert result.stderr == (
        f"Error: integration {integration_id!r} not found at {bridge.url}; "
        "list the ids with `webpaas integration:list`\n"
    )
    assert CONFIG_INTEGRATION_ID in webpaas.run("integration:list").stdout


@pytest.mark.parametrize(
    "arguments",
    [
        ("integration:update", CONFIG_INTEGRATION_ID, "--channel", "#ops"),
        ("integration:delete", CONFIG_INTEGRATION_ID),
    ],
)
def test_config_integration_exits_7(
    webpaas: Webpaas, arguments: tuple[str, ...]
) -> None:
    result = webpaas.run(*arguments)

    assert result.exit_code == EXIT_READ_ONLY
    assert (
        f"'{CONFIG_INTEGRATION_ID}' is declared in the bridge's config file"
        in result.stderr
    )
    assert CONFIG_INTEGRATION_ID in webpaas.run("integration:list").stdout


@pytest.mark.parametrize(
    ("env", "options", "message"),
    [
        # no token anywhere
        ({"WEBPAAS_ADMIN_TOKEN": None}, (), "no admin token given"),
        (
            {"WEBPAAS_ADMIN_TOKEN": "not-the-admin-token"},
            (),
            "rejected the admin token",
        ),
        # the Alertmanager credential must not open the admin API
        ({"WEBPAAS_ADMIN_TOKEN": ALERTMANAGER_TOKEN}, (), "rejected the admin token"),
        ({}, ("--admin-token", "not-the-admin-token"), "rejected the admin token"),
    ],
)
def test_bad_credential_exits_5(
    webpaas: Webpaas, env: dict[str, str | None], options: tuple[str, ...], message: str
) -> None:
    result = webpaas.run("integration:list", *options, env=env)

    assert result.exit_code == EXIT_CREDENTIAL
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert ALERTMANAGER_TOKEN not in result.stderr


@pytest.mark.parametrize(
    ("options", "env", "source"),
    [
        (("--admin-token", "wrong-token"), {}, "--admin-token"),
        ((), {"WEBPAAS_ADMIN_TOKEN": "wrong-token"}, "WEBPAAS_ADMIN_TOKEN"),
        (("--admin-token-file", "TOKEN_FILE"), {}, "--admin-token-file '{file}'"),
        (
            (),
            {"WEBPAAS_ADMIN_TOKEN": None, "WEBPAAS_ADMIN_TOKEN_FILE": "TOKEN_FILE"},
            "WEBPAAS_ADMIN_TOKEN_FILE '{file}'",
        ),
    ],
)
def test_rejected_token_names_its_source(
    webpaas: Webpaas,
    tmp_path: Path,
    options: tuple[str, ...],
    env: dict[str, str | None],
    source: str,
) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text("wrong-token\n", encoding="utf-8")
    options = tuple(
        str(token_file) if item == "TOKEN_FILE" else item for item in options
    )
    env = {
        name: str(token_file) if value == "TOKEN_FILE" else value
        for name, value in env.items()
    }
    bridge_url = webpaas.environment["WEBPAAS_API_URL"]

    result = webpaas.run("integration:list", *options, env=env)

    assert result.exit_code == EXIT_CREDENTIAL
    assert result.stderr == (
        f"Error: webpaas-bridge at {bridge_url} rejected the admin token from "
        f"{source.format(file=token_file)}; use the value of the "
        "bridge's WEBPAAS_ADMIN_TOKEN, not the Alertmanager token\n"
    )


def test_admin_token_file_is_read(webpaas: Webpaas, tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(f"{ADMIN_TOKEN}\n", encoding="utf-8")

    result = webpaas.run(
        "integration:list",
        "--admin-token-file",
        str(token_file),
        env={"WEBPAAS_ADMIN_TOKEN": "wrong-token"},
    )

    assert result.exit_code == 0, result.stderr


def test_admin_token_option_beats_environment(webpaas: Webpaas) -> None:
    result = webpaas.run(
        "integration:list",
        f"--admin-token={ADMIN_TOKEN}",
        env={"WEBPAAS_ADMIN_TOKEN": "wrong-token"},
    )

    assert result.exit_code == 0, result.stderr


def test_unreachable_bridge_exits_3(webpaas: Webpaas) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = webpaas.run("integration:list", "--api-url", url)

    assert result.exit_code == EXIT_UNAVAILABLE
    assert result.stderr.startswith(f"Error: cannot reach webpaas-bridge at {url} (")
    assert result.stderr.endswith(
        "is webpaas-bridge running? set --api-url or WEBPAAS_API_URL\n"
    )


def test_url_of_other_server_exits_1(webpaas: Webpaas, bridge: Bridge) -> None:
    # The webhook receiver responds 405 with plain text to a GET.
    result = webpaas.run("integration:list", "--api-url", bridge.webhook.url)

    assert result.exit_code == EXIT_UNEXPECTED
    assert (
        "without a JSON object; check that --api-url points at webpaas-bridge"
        in result.stderr
    )


def test_plain_server_error_exits_1(webpaas: Webpaas) -> None:
    # A server that fails the way Starlette does on an unhandled error.
    with WebhookReceiver() as server:
        url = server.url
        server.fail_next(status=500, body="Internal Server Error")
        result = webpaas.run("integration:list", "--api-url", url)

    assert result.exit_code == EXIT_UNEXPECTED
    assert result.stderr == (
        f"Error: webpaas-bridge at {url} failed with HTTP 500; see the bridge's log\n"
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("integration:add",), "Missing option '--type'"),
        (("integration:add", "--type", "health.email"), "'health.email' is not one of"),
        (
            ("integration:add", "--type", "health.slack", "--channel", "#ops"),
            "--type health.slack needs --token (or --token-file)",
        ),
        (
            ("integration:add", "--type", "health.webhook"),
            "--type health.webhook needs --url",
        ),
        (
            ("integration:add", "--type", "health.slack", "--routing-key", ROUTING_KEY),
            "--routing-key does not apply to --type health.slack",
        ),
        (
            (
                "integration:add",
                "--type",
                "health.slack",
                "--token",
                SLACK_TOKEN,
                "--token-file",
                "/dev/null",
                "--channel",
                "#x",
            ),
            "give --token or --token-file, not both",
        ),
        (
            (
                "integration:add",
                "--type",
                "health.slack",
                "--token-file",
                "/nonexistent/token",
                "--channel",
                "#x",
            ),
            "cannot read '/nonexistent/token'",
        ),
        (("integration:update", "abc"), "give at least one field to change"),
        (
            (
                "integration:update",
                "abc",
                "--shared-key",
                SHARED_KEY,
                "--clear-shared-key",
            ),
            "give --shared-key or --clear-shared-key, not both",
        ),
        (("integration:list", "--format", "yaml"), "'yaml' is not one of"),
        (
            ("integration:list", "--api-url", "ftp://127.0.0.1/"),
            "is not an http or https URL",
        ),
        (
            (
                "integration:list",
                "--admin-token",
                "a",
                "--admin-token-file",
                "/dev/null",
            ),
            "not both",
        ),
        (
            ("integration:list", "--api-url", "http://admin:pw@127.0.0.1:1/"),
            "must not contain a user or password",
        ),
        (("integration:get",), "Missing argument 'ID'"),
    ],
)
def test_usage_errors_exit_2(
    webpaas: Webpaas, arguments: tuple[str, ...], message: str
) -> None:
    result = webpaas.run(*arguments)

    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr
    assert_no_secret(result.stdout + result.stderr)


def test_usage_error_reported_before_missing_token(webpaas: Webpaas) -> None:
    result = webpaas.run(
        "integration:add", "--type", "health.slack", env={"WEBPAAS_ADMIN_TOKEN": None}
    )

    assert result.exit_code == EXIT_USAGE
    assert "needs --token" in result.stderr


def test_installed_command_exit_codes(bridge: Bridge, tmp_path: Path) -> None:
    # The real entry point in its own process, as an operator runs it.
    command = [sys.executable, "-c", "from bridge.cli import main; main()"]
    environment = {
        "WEBPAAS_API_URL": bridge.url,
        "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN,
        "PATH": "/usr/bin:/bin",
    }

    listed = subprocess.run(
        [*command, "integration:list"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    unreachable = subprocess.run(
        [*command, "integration:list", f"--api-url=http://127.0.0.1:{free_port()}"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    usage = subprocess.run(
        [*command, "integration:add"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert listed.returncode == 0, listed.stderr
    assert CONFIG_INTEGRATION_ID in listed.stdout
    assert unreachable.returncode == EXIT_UNAVAILABLE
    assert len(unreachable.stderr.splitlines()) == 1
    assert usage.returncode == EXIT_USAGE


def test_generated_key_signs_verifiable_events(
    webpaas: Webpaas, tmp_path: Path, cleanup: list[str]
) -> None:
    key_file = tmp_path / "webhook.key"
    key_file.write_text(webpaas.run("key:generate").stdout, encoding="utf-8")

    with WebhookReceiver(shared_key=key_file.read_text().strip()) as receiver:
        result = webpaas.run(
            "integration:add",
            "--type",
            "health.webhook",
            "--url",
            f"{receiver.url}/hook",
            "--shared-key-file",
            str(key_file),
        )
        accepted = receiver.events
        rejected = receiver.rejected

    assert result.exit_code == 0, result.stderr
    cleanup.append(added_id(result.stdout))
    assert "live check: passed" in result.stdout
    assert len(accepted) == 1
    assert rejected == []
