"""A real ``webpaas-bridge`` process on 127.0.0.1 with one webhook integration.

Tests of disk faults, slow clients and secrets need the process itself:
uvicorn's connection handling, the log on stderr, SQLite on a real file
system. `start_bridge` writes a config file that declares one signed
webhook integration, starts ``python -m bridge.server`` with the tokens in
its environment, and waits for ``/healthz``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e.processes import Process, free_port

BRIDGE_TOKEN = "running-bridge-token-a1c3e5g7i9"
ADMIN_TOKEN = "running-admin-token-b2d4f6h8j0"
SHARED_KEY = "cnVubmluZy1icmlkZ2Utc2hhcmVkLWtleS0zMi1ieXRlcyE"
SECRETS = (BRIDGE_TOKEN, ADMIN_TOKEN, SHARED_KEY)


@dataclass
class RunningBridge:
    url: str
    process: Process

    def post(self, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
        payload: dict[str, Any] = (
            {"content": body} if isinstance(body, bytes) else {"json": body}
        )
        return httpx.post(
            f"{self.url}/alertmanager",
            **payload,
            headers={
                "Authorization": f"Bearer {BRIDGE_TOKEN}",
                "Content-Type": "application/json",
                **headers,
            },
            timeout=10,
        )

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10)

    def log(self) -> str:
        return self.process.log_path.read_text(encoding="utf-8", errors="replace")


def bridge_process(
    directory: Path, db: Path, webhook_url: str, **environment: str
) -> RunningBridge:
    """Return a bridge process, not yet started, that stores into ``db``."""
    config = directory / "bridge.yml"
    config.write_text(
        "integrations:\n"
        f"  - {{id: hook, type: health.webhook, url: '{webhook_url}', "
        "shared_key_env: RUNNING_SHARED_KEY}\n",
        encoding="utf-8",
    )
    port = free_port()
    env = {name: value for name, value in os.environ.items() if "WEBPAAS_" not in name}
    env.update(
        {
            "WEBPAAS_DB": str(db),
            "WEBPAAS_LISTEN": f"127.0.0.1:{port}",
            "WEBPAAS_BRIDGE_TOKEN": BRIDGE_TOKEN,
            "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN,
            "WEBPAAS_ALLOW_PRIVATE_TARGETS": "1",
            "WEBPAAS_DELIVERY_BACKOFF_BASE_SECONDS": "0.1",
            "WEBPAAS_DELIVERY_BACKOFF_MAX_SECONDS": "0.5",
            "WEBPAAS_DELIVERY_POLL_SECONDS": "0.05",
            "RUNNING_SHARED_KEY": SHARED_KEY,
            **environment,
        }
    )
    url = f"http://127.0.0.1:{port}"
    process = Process(
        "webpaas-bridge",
        [sys.executable, "-m", "bridge.server", "--config", str(config)],
        directory / "bridge.log",
        ready_url=f"{url}/healthz",
        env=env,
    )
    return RunningBridge(url, process)
