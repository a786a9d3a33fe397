"""The bridge process requires its credentials unless started with --insecure-no-auth.

Each test starts a real ``python -m bridge.server`` with a temporary store
on a free port of 127.0.0.1, and stops it by its pid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from e2e.processes import Process, free_port

from cli.running_bridge import ADMIN_TOKEN, ALERTMANAGER_TOKEN

# webpaas-bridge exits with this status on a configuration error.
EXIT_CONFIG = 2


def bridge_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WEBPAAS_")
    }
    environment.update(
        {
            "WEBPAAS_DB": str(tmp_path / "bridge.db"),
            "WEBPAAS_LISTEN": f"127.0.0.1:{free_port()}",
            **variables,
        }
    )
    return environment


def run_bridge(
    environment: dict[str, str], *arguments: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bridge.server", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        (
            {},
            "refusing to start without an Alertmanager credential "
            "(WEBPAAS_BRIDGE_TOKEN or bridge_token, or bridge_username and "
            "bridge_password) and an admin token (WEBPAAS_ADMIN_TOKEN or "
            "admin_token)",
        ),
        (
            {"WEBPAAS_BRIDGE_TOKEN": ALERTMANAGER_TOKEN},
            "refusing to start without an admin token (WEBPAAS_ADMIN_TOKEN or "
            "admin_token)",
        ),
        (
            {"WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN},
            "refusing to start without an Alertmanager credential",
        ),
    ],
)
def test_bridge_without_credentials_refuses_to_start(
    tmp_path: Path, variables: dict[str, str], missing: str
) -> None:
    result = run_bridge(bridge_environment(tmp_path, **variables))

    assert result.returncode == EXIT_CONFIG
    assert result.stderr.startswith(f"webpaas-bridge: error: {missing}")
    assert "--insecure-no-auth" in result.stderr
    assert not (tmp_path / "bridge.db").exists()


def test_bridge_refuses_admin_token_equal_to_alertmanager_token(
    tmp_path: Path,
) -> None:
    environment = bridge_environment(
        tmp_path,
        WEBPAAS_BRIDGE_TOKEN=ALERTMANAGER_TOKEN,
        WEBPAAS_ADMIN_TOKEN=ALERTMANAGER_TOKEN,
    )

    result = run_bridge(environment)

    assert result.returncode == EXIT_CONFIG
    assert "admin_token must differ from the Alertmanager credential" in result.stderr
    assert ALERTMANAGER_TOKEN not in result.stderr


def test_insecure_bridge_keeps_admin_api_closed(tmp_path: Path) -> None:
    environment = bridge_environment(tmp_path)
    url = f"http://{environment['WEBPAAS_LISTEN']}"
    process = Process(
        "webpaas-bridge",
        [sys.executable, "-m", "bridge.server", "--insecure-no-auth"],
        tmp_path / "bridge.log",
        ready_url=f"{url}/healthz",
        env=environment,
    )
    process.start()
    try:
        request = urllib.request.Request(
            f"{url}/api/v1/integrations",
            headers={"Authorization": "Bearer any-token-at-all"},
        )
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=5)
        status = raised.value.code
        body = json.loads(raised.value.read())
    finally:
        process.stop()

    assert status == 403
    assert body["error"].startswith("the admin API is disabled")
    log = (tmp_path / "bridge.log").read_text(encoding="utf-8")
    assert "no admin token is configured: the admin API is disabled" in log
