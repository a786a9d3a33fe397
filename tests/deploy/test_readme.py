"""README.md: its commands, links and examples are the ones that work.

The webhook check is run against signatures built with hmac from the
documented construction, and the Alertmanager example is checked with
amtool, so that a user who copies either gets a working result.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require_binary

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")
PROTECTED_HEADER = b'{"alg":"HS256","b64":false,"crit":["b64"]}'


def section(title: str) -> str:
    """Return the text of the README section with this heading."""
    match = re.search(
        rf"^(#+) {re.escape(title)}\n(.*?)(?=^#{{1,2}} |\Z)", README, re.M | re.S
    )
    assert match, f"README has no section {title!r}"
    return match[2]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(shared_key: str, body: bytes, header: bytes = PROTECTED_HEADER) -> str:
    key = base64.urlsafe_b64decode(shared_key + "=" * (-len(shared_key) % 4))
    encoded = b64url(header)
    mac = hmac.new(key, encoded.encode() + b"." + body, hashlib.sha256).digest()
    return f"{encoded}..{b64url(mac)}"


@pytest.fixture(scope="module")
def verify() -> Callable[[str, str, bytes], bool]:
    (source,) = code_blocks(
        section("Verify a signed webhook in the receiver"), "python"
    )
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)  # noqa: S102
    return namespace["verify"]


def test_readme_two_setup_commands() -> None:
    commands = [block.strip() for block in code_blocks(section("Two commands"), "sh")]

    assert commands == ["bash deploy/local/stack.sh up", "bash tests/run.sh"]


def test_ci_runs_readme_test_command() -> None:
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()

    assert lines[-1] == "exec bash tests/run.sh"


def test_readme_links_exist() -> None:
    targets = re.findall(r"\]\(((?!https?://)[^)#]+)(?:#[^)]*)?\)", README)

    assert targets
    missing = [target for target in targets if not (REPO / target).exists()]
    assert not missing


def test_readme_webhook_check_accepts_signature(
    verify: Callable[[str, str, bytes], bool],
) -> None:
    shared_key = b64url(secrets.token_bytes(32))
    body = b'{"id":"evt-1","type":"warning"}'

    assert verify(shared_key, sign(shared_key, body), body) is True


@pytest.mark.parametrize(
    ("case", "header"),
    [
        # The body changed after signing.
        ("tampered body", PROTECTED_HEADER),
        # Signed with another key.
        ("other key", PROTECTED_HEADER),
        # A header that picks no algorithm must not pass.
        ("alg none", b'{"alg":"none","b64":false,"crit":["b64"]}'),
    ],
)
def test_readme_webhook_check_rejects(
    verify: Callable[[str, str, bytes], bool], case: str, header: bytes
) -> None:
    shared_key = b64url(secrets.token_bytes(32))
    body = b'{"id":"evt-1","type":"warning"}'
    signing_key = b64url(secrets.token_bytes(32)) if case == "other key" else shared_key
    signature = sign(signing_key, body, header)
    received = body + b" " if case == "tampered body" else body

    assert verify(shared_key, signature, received) is False


def test_readme_alertmanager_example_passes_amtool(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    (example,) = code_blocks(
        section("Point an existing Alertmanager at the bridge"), "yaml"
    )
    config = yaml.safe_load(example)
    # The example adds a child route to an existing tree; give it a root.
    config["route"]["receiver"] = "default"
    config["receivers"].append({"name": "default"})
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))

    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    (webhook,) = config["receivers"][0]["webhook_configs"]
    assert webhook["send_resolved"] is True
    assert "severity" not in config["route"]["routes"][0]["group_by"]
    assert "inhibit_rules" not in config
