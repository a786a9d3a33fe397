"""Steps the end-to-end tests share: fill a disk, wait for notifications."""

from __future__ import annotations

import time

from e2e.stack import Stack

# Seconds from a disk crossing a threshold to every target having the
# notification. On the test clock this takes 2 to 8 s; the first one after
# start waits for Prometheus' first rule evaluation as well.
NOTIFY_TIMEOUT = 60.0
# Seconds a test waits to be sure that nothing more arrives: several
# Alertmanager group intervals and Prometheus resend delays on the test clock.
QUIET_PERIOD = 6.0


def _is_prefix(actual: list[str], expected: list[str]) -> bool:
    return actual == expected[: len(actual)]


def await_sequences(
    stack: Stack, service: str, expected: list[str], timeout: float = NOTIFY_TIMEOUT
) -> None:
    """Wait until every target received exactly ``expected`` for ``service``.

    Fails at once when a target received something that ``expected`` does
    not start with, and after ``timeout`` when one is still short.
    """
    deadline = time.monotonic() + timeout
    while True:
        sequences = stack.targets.sequences(service)
        wrong = {
            target: kinds
            for target, kinds in sequences.items()
            if not _is_prefix(kinds, expected)
        }
        assert not wrong, f"{service}: expected {expected}, received {sequences}"
        if all(kinds == expected for kinds in sequences.values()):
            return
        assert time.monotonic() < deadline, (
            f"{service}: after {timeout:.0f} s still waiting for {expected}; "
            f"received {sequences}"
        )
        time.sleep(0.2)


def await_one_of(
    stack: Stack,
    service: str,
    choices: list[list[str]],
    timeout: float = NOTIFY_TIMEOUT,
) -> None:
    """Wait until every target received exactly one of ``choices``, the same one.

    Fails at once when a target received something that no choice starts
    with, and after ``timeout`` when the targets are still short.
    """
    deadline = time.monotonic() + timeout
    while True:
        sequences = stack.targets.sequences(service)
        for target, kinds in sequences.items():
            assert any(_is_prefix(kinds, choice) for choice in choices), (
                f"{service} at {target}: {kinds} starts none of {choices}"
            )
        finished = [kinds for kinds in sequences.values() if kinds in choices]
        if len(finished) == len(sequences) and all(
            kinds == finished[0] for kinds in finished
        ):
            return
        assert time.monotonic() < deadline, (
            f"{service}: after {timeout:.0f} s still waiting for one of "
            f"{choices}; received {sequences}"
        )
        time.sleep(0.2)


def assert_stays(
    stack: Stack, service: str, expected: list[str], seconds: float = QUIET_PERIOD
) -> None:
    """Check for ``seconds`` that every target keeps exactly ``expected``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sequences = stack.targets.sequences(service)
        for target, kinds in sequences.items():
            assert kinds == expected, f"{service} at {target}: {kinds} != {expected}"
        time.sleep(0.5)


def fill(stack: Stack, service: str, available_percent: float) -> None:
    """Leave ``available_percent`` of the service's disk available."""
    actual = stack.disks[service].fill(available_percent)
    assert abs(actual - available_percent) < 1.0, actual
