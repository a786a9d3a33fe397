"""Smoke checks of the installed distribution."""

from __future__ import annotations

import subprocess
import sys


def test_console_scripts_installed() -> None:
    """Every console script that pyproject.toml declares starts and prints help."""
    for module in ("bridge.cli",):
        result = subprocess.run(
            [sys.executable, "-c", f"import {module}; {module}.main(['--help'])"],
            capture_output=True,
            text=True,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout
