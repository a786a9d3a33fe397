"""Real processes for end-to-end tests: free ports, start, wait, stop by pid.

Every process starts in its own session (``start_new_session``) with its
output in a log file, and is stopped by its own pid: SIGTERM, then SIGKILL
after a grace period. Nothing is ever stopped by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

# Seconds a process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """Return the HTTP status of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (OSError, urllib.error.URLError):
        return None


def wait_for(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.2,
) -> object:
    """Poll ``condition`` until it returns a truthy value; fail after ``timeout``.

    Raises:
        TimeoutError: with ``what`` in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Process:
    """One long-running program under test, restartable with the same command."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        ready_url: str | None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.ready_url = ready_url
        self.env = dict(env) if env is not None else None
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start the process and wait until its ready URL answers 2xx."""
        assert not self.running(), f"{self.name} is already running"
        with self.log_path.open("ab") as log:
            log.write(f"--- start: {' '.join(self.command)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        if self.ready_url is not None:
            wait_for(self._ready, timeout, f"{self.name} at {self.ready_url}")

    def _ready(self) -> bool:
        if not self.running():
            raise RuntimeError(
                f"{self.name} exited during start; log:\n{self.log_tail()}"
            )
        status = http_status(self.ready_url or "")
        return status is not None and 200 <= status < 300

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Send ``sig`` to the process by its pid and reap it; SIGKILL after grace."""
        popen = self._popen
        if popen is None or popen.poll() is not None:
            return
        os.kill(popen.pid, sig)
        try:
            popen.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.kill(popen.pid, signal.SIGKILL)
            popen.wait(timeout=STOP_GRACE_SECONDS)

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
