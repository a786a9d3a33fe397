"""Soak the real bridge: stream Alertmanager messages, SIGKILL it, check delivery.

    .venv/bin/python bench/soak.py [--cycles 100] [--disks 24] [--seed N]

The script runs ``python -m bridge.server`` on 127.0.0.1 with a SQLite file
in a temporary directory, and the fake Slack, PagerDuty and signed webhook
receiver from ``tests/fakes`` in this process. Sender threads, each owning
some of the disks, post Alertmanager webhook messages (version 4) for a few
of their disks at a time. Each step changes the level of some disks and
repeats others unchanged, and some messages are posted twice, as an HA pair
of Alertmanagers does. A sender retries a message until it is answered 2xx,
as Alertmanager retries network errors and 5xx. Now and then a target
answers 503 to a few requests. A killer thread sends SIGKILL to the bridge
at random moments and starts it again on the same SQLite file.

After the last cycle the script waits until the outbox is empty and checks
every target:

- each disk got exactly the notifications that the levels it was sent imply,
  in that order: every message answered 2xx produced its notifications;
- a notification that arrived twice carries the same event id both times
  (the webhook body's ``id``, PagerDuty's ``custom_details.event_id``);
- no dead letters.

It prints a summary, writes it as JSON with ``--json FILE``, and exits 1
when a check fails, keeping the temporary directory with the bridge's log
and store for a look.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO / "tests"))

from e2e.processes import Process, free_port, wait_for  # noqa: E402
from fakes.pagerduty import PagerDutyFake  # noqa: E402
from fakes.slack import DEFAULT_TOKEN as SLACK_TOKEN  # noqa: E402
from fakes.slack import SlackFake  # noqa: E402
from fakes.webhook_receiver import WebhookReceiver  # noqa: E402

from bridge.model import DiskKey, EventType, Level  # noqa: E402

BRIDGE_TOKEN = "soak-bridge-token-5d1f0c9e2b7a"
ADMIN_TOKEN = "soak-admin-token-8a4e6b2c1d9f"
ROUTING_KEY = "soak0routing0key0000000000000000"
SHARED_KEY = "c29hay1vbmx5LXNoYXJlZC1rZXktb2YtMzItYnl0ZXMhIQ"
# Every secret the bridge gets, so that the log can be searched for them.
SECRETS = (BRIDGE_TOKEN, ADMIN_TOKEN, ROUTING_KEY, SHARED_KEY, SLACK_TOKEN)

SEVERITIES = (("warning", Level.WARNING), ("critical", Level.CRITICAL))
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# Seconds a sender keeps retrying one message before the run fails.
MESSAGE_DEADLINE_SECONDS = 60.0
# Seconds the outbox may take to empty after the last message.
DRAIN_TIMEOUT_SECONDS = 300.0
# Start of the bridge's Slack fallback text for each event type.
SLACK_TITLES = (
    ("Disk space all clear", EventType.ALL_CLEAR),
    ("Low disk space: back to warning", EventType.DEESCALATION),
    ("Low disk space: critical", EventType.CRITICAL),
    ("Low disk space: warning", EventType.WARNING),
)
DISK_IN_TEXT = re.compile(r"soak-disk-(\d+)")


def rfc3339(moment: datetime, rng: random.Random) -> str:
    """Format like Go: nine fractional digits, sometimes with a UTC offset."""
    if rng.random() < 0.2:
        offset = timedelta(hours=rng.choice((-7, 2, 5)), minutes=rng.choice((0, 30)))
        local = moment.astimezone(timezone(offset))
        zone = local.strftime("%z")
        return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + f"123{zone[:3]}:{zone[3:]}"
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "789Z"


@dataclass
class AlertTruth:
    """One severity's alert of one disk: its current firing period."""

    starts_at: datetime
    ends_at: datetime | None = None


@dataclass
class Disk:
    """A simulated disk: its level, its alerts, and the events it should cause."""

    number: int
    level: Level = Level.OK
    alerts: dict[str, AlertTruth] = field(default_factory=dict)
    expected: list[EventType] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {
            "project": "soak",
            "environment": "main",
            "service": f"svc-{self.number:03d}",
            "mountpoint": f"/srv/soak-disk-{self.number:03d}",
            "instance": f"node-{self.number % 5}.soak.internal:9100",
        }

    @property
    def id(self) -> str:
        return DiskKey.from_alert_labels(self.labels).id

    def set_level(self, level: Level, clock: Iterable[datetime]) -> None:
        """Move the disk to ``level``, opening and closing alert periods."""
        moments = iter(clock)
        for severity, threshold in SEVERITIES:
            alert = self.alerts.get(severity)
            firing = alert is not None and alert.ends_at is None
            if level >= threshold and not firing:
                self.alerts[severity] = AlertTruth(starts_at=next(moments))
            elif level < threshold and firing:
                assert alert is not None
                alert.ends_at = next(moments)
        if level != self.level:
            self.expected.append(EventType.for_transition(self.level, level))
        self.level = level

    def webhook_alerts(self, rng: random.Random) -> list[dict[str, Any]]:
        alerts = []
        for severity, _ in SEVERITIES:
            alert = self.alerts.get(severity)
            if alert is None:
                continue
            alerts.append(
                {
                    "status": "firing" if alert.ends_at is None else "resolved",
                    "labels": {
                        "alertname": "LowDiskSpace",
                        "severity": severity,
                        **self.labels,
                    },
                    "annotations": {
                        "free_percent": f"{rng.uniform(1, 19):.2f}",
                        "summary": f"Disk soak-disk-{self.number:03d} is low",
                        "warning_threshold": "20",
                        "critical_threshold": "10",
                    },
                    "startsAt": rfc3339(alert.starts_at, rng),
                    "endsAt": (
                        rfc3339(alert.ends_at, rng) if alert.ends_at else GO_ZERO_TIME
                    ),
                    "generatorURL": "http://prometheus.soak.invalid/graph",
                    "fingerprint": f"{self.number:08x}{severity[0]}",
                }
            )
        return alerts


class Clock:
    """Strictly increasing timestamps, so each alert period starts later."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now = datetime(2026, 12, 1, tzinfo=UTC)

    def __iter__(self) -> Clock:
        return self

    def __next__(self) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=1, microseconds=1)
            return self._now


def message_body(disks: Sequence[Disk], rng: random.Random, group: int) -> bytes:
    alerts = [alert for disk in disks for alert in disk.webhook_alerts(rng)]
    firing = any(alert["status"] == "firing" for alert in alerts)
    document = {
        "version": "4",
        "receiver": "webpaas-bridge",
        "status": "firing" if firing else "resolved",
        "groupKey": f'{{}}:{{group="{group}"}}',
        "groupLabels": {"group": str(group)},
        "commonLabels": {"project": "soak"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.soak.invalid",
        "truncatedAlerts": 0,
        "alerts": alerts,
    }
    return json.dumps(document).encode()


@dataclass
class Counts:
    messages: int = 0
    posts: int = 0
    duplicate_posts: int = 0
    failed_posts: int = 0
    level_changes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **amounts: int) -> None:
        with self.lock:
            for name, amount in amounts.items():
                setattr(self, name, getattr(self, name) + amount)


class Sender(threading.Thread):
    """Posts messages for its own disks until its stop event is set."""

    def __init__(
        self,
        url: str,
        disks: list[Disk],
        clock: Clock,
        counts: Counts,
        stop: threading.Event,
        seed: int,
        group: int,
        pause: float,
    ) -> None:
        super().__init__(name=f"sender-{group}", daemon=True)
        self.url = url
        self.disks = disks
        self.clock = clock
        self.counts = counts
        self.stop_event = stop
        self.rng = random.Random(seed)
        self.group = group
        self.pause = pause
        self.error: str | None = None

    def run(self) -> None:
        headers = {
            "Authorization": f"Bearer {BRIDGE_TOKEN}",
            "Content-Type": "application/json",
        }
        with httpx.Client(timeout=5.0, headers=headers) as client:
            while not self.stop_event.is_set() and self.error is None:
                self._step(client)
                time.sleep(self.rng.uniform(0.5, 1.5) * self.pause)

    def _step(self, client: httpx.Client) -> None:
        chosen = self.rng.sample(self.disks, k=self.rng.randint(1, 3))
        for disk in chosen:
            if self.rng.random() < 0.4:
                level = self.rng.choice([lvl for lvl in Level if lvl != disk.level])
                disk.set_level(level, self.clock)
                self.counts.add(level_changes=1)
        body = message_body(chosen, self.rng, self.group)
        self._post(client, body)
        if self.rng.random() < 0.15:
            # The second Alertmanager of an HA pair sends the same message.
            self._post(client, body)
            self.counts.add(duplicate_posts=1)
        self.counts.add(messages=1)

    def _post(self, client: httpx.Client, body: bytes) -> None:
        deadline = time.monotonic() + MESSAGE_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            self.counts.add(posts=1)
            try:
                response = client.post(f"{self.url}/alertmanager", content=body)
            except httpx.HTTPError:
                self.counts.add(failed_posts=1)
                time.sleep(0.05)
                continue
            if 200 <= response.status_code < 300:
                return
            if response.status_code < 500:
                self.error = f"message rejected with {response.status_code}"
                return
            self.counts.add(failed_posts=1)
            time.sleep(0.05)
        self.error = f"no 2xx within {MESSAGE_DEADLINE_SECONDS:g} s"


@dataclass(frozen=True)
class Arrival:
    """One notification as a target received it."""

    disk: str
    type: EventType
    event_id: str | None


def slack_arrivals(slack: SlackFake, disk_ids: dict[str, str]) -> list[Arrival]:
    arrivals = []
    for message in slack.messages:
        text = message.get("text", "")
        match = DISK_IN_TEXT.search(text)
        kind = next(
            (kind for title, kind in SLACK_TITLES if text.startswith(title)), None
        )
        if match is None or kind is None:
            raise ValueError(f"unexpected Slack text {text[:80]!r}")
        arrivals.append(Arrival(disk_ids[match[1]], kind, None))
    return arrivals


def pagerduty_arrivals(pagerduty: PagerDutyFake) -> list[Arrival]:
    arrivals = []
    for event in pagerduty.events:
        disk = event["dedup_key"].removeprefix("webpaas-health/")
        if event["event_action"] == "resolve":
            arrivals.append(Arrival(disk, EventType.ALL_CLEAR, None))
            continue
        details = event["payload"]["custom_details"]
        arrivals.append(
            Arrival(disk, EventType(details["event_type"]), details["event_id"])
        )
    return arrivals


def webhook_arrivals(webhook: WebhookReceiver) -> list[Arrival]:
    return [
        Arrival(event["disk"]["id"], EventType(event["type"]), event["id"])
        for event in webhook.events
    ]


def check_target(
    name: str, arrivals: Sequence[Arrival], expected: dict[str, list[EventType]]
) -> tuple[list[str], int]:
    """Compare one target's arrivals with each disk's expected events.

    Consecutive arrivals of the same type for one disk are one notification
    sent twice (the expected sequence never repeats a type in a row), and
    must carry the same event id where the format has one.

    Returns:
        The problems found, and how many arrivals were duplicates.
    """
    problems = []
    duplicates = 0
    per_disk: dict[str, list[Arrival]] = {}
    for arrival in arrivals:
        per_disk.setdefault(arrival.disk, []).append(arrival)
    for disk in per_disk.keys() - expected.keys():
        problems.append(f"{name}: notification for unknown disk {disk}")
    for disk, want in expected.items():
        collapsed: list[Arrival] = []
        for arrival in per_disk.get(disk, []):
            previous = collapsed[-1] if collapsed else None
            if previous is not None and previous.type is arrival.type:
                duplicates += 1
                if previous.event_id != arrival.event_id:
                    problems.append(
                        f"{name}: disk {disk} got {arrival.type.value} twice with "
                        f"event ids {previous.event_id} and {arrival.event_id}"
                    )
                continue
            collapsed.append(arrival)
        types = [arrival.type for arrival in collapsed]
        if types != want:
            problems.append(
                f"{name}: disk {disk} got {[kind.value for kind in types]}, "
                f"expected {[kind.value for kind in want]}"
            )
    return problems, duplicates


def metric(url: str, name: str) -> float | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5.0).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def bridge_process(
    workdir: Path, port: int, slack: SlackFake, pagerduty: PagerDutyFake, webhook: Any
) -> Process:
    config = workdir / "bridge.yml"
    config.write_text(
        "integrations:\n"
        "  - {id: soak-slack, type: health.slack, channel: '#alerts', "
        "token_env: SOAK_SLACK_TOKEN}\n"
        "  - {id: soak-pagerduty, type: health.pagerduty, "
        "routing_key_env: SOAK_ROUTING_KEY}\n"
        f"  - {{id: soak-webhook, type: health.webhook, url: '{webhook.url}/hook', "
        "shared_key_env: SOAK_SHARED_KEY}\n",
        encoding="utf-8",
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("WEBPAAS_")
    }
    environment.update(
        {
            "WEBPAAS_DB": str(workdir / "bridge.db"),
            "WEBPAAS_LISTEN": f"127.0.0.1:{port}",
            "WEBPAAS_BRIDGE_TOKEN": BRIDGE_TOKEN,
            "WEBPAAS_ADMIN_TOKEN": ADMIN_TOKEN,
            "WEBPAAS_ALLOW_PRIVATE_TARGETS": "1",
            "WEBPAAS_SLACK_API_URL": slack.api_url,
            "WEBPAAS_PAGERDUTY_EVENTS_URL": pagerduty.events_url,
            "WEBPAAS_DELIVERY_BACKOFF_BASE_SECONDS": "0.05",
            "WEBPAAS_DELIVERY_BACKOFF_MAX_SECONDS": "0.5",
            "WEBPAAS_DELIVERY_POLL_SECONDS": "0.05",
            "WEBPAAS_DELIVERY_TIMEOUT_SECONDS": "5",
            "SOAK_SLACK_TOKEN": SLACK_TOKEN,
            "SOAK_ROUTING_KEY": ROUTING_KEY,
            "SOAK_SHARED_KEY": SHARED_KEY,
        }
    )
    return Process(
        "webpaas-bridge",
        [sys.executable, "-m", "bridge.server", "--config", str(config)],
        workdir / "bridge.log",
        ready_url=f"http://127.0.0.1:{port}/healthz",
        env=environment,
    )


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(arguments.seed)
    workdir = Path(tempfile.mkdtemp(prefix="webpaas-soak-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    disks = [Disk(number) for number in range(arguments.disks)]
    clock = Clock()
    counts = Counts()
    stop = threading.Event()
    kills = 0
    target_faults = 0
    problems: list[str] = []
    started = time.monotonic()

    with (
        SlackFake() as slack,
        PagerDutyFake() as pagerduty,
        WebhookReceiver(shared_key=SHARED_KEY) as webhook,
    ):
        fakes = (slack, pagerduty, webhook)
        bridge = bridge_process(workdir, port, slack, pagerduty, webhook)
        bridge.start()
        senders = [
            Sender(
                url,
                disks[index :: arguments.senders],
                clock,
                counts,
                stop,
                rng.randrange(2**32),
                index,
                1.0 / arguments.rate,
            )
            for index in range(arguments.senders)
        ]
        try:
            for sender in senders:
                sender.start()
            for _ in range(arguments.cycles):
                time.sleep(rng.uniform(0.05, arguments.max_run_seconds))
                if rng.random() < 0.3:
                    rng.choice(fakes).fail_next(rng.randint(1, 3), status=503)
                    target_faults += 1
                bridge.stop(signal.SIGKILL)
                kills += 1
                time.sleep(rng.uniform(0, 0.2))
                bridge.start()
            time.sleep(0.5)
            stop.set()
            for sender in senders:
                sender.join(timeout=MESSAGE_DEADLINE_SECONDS + 10)

            streamed = time.monotonic()
            try:
                wait_for(
                    lambda: metric(url, "webpaas_bridge_outbox_pending") == 0,
                    timeout=DRAIN_TIMEOUT_SECONDS,
                    what="an empty outbox",
                    interval=0.2,
                )
            except TimeoutError as error:
                problems.append(str(error))
            drain_seconds = time.monotonic() - streamed
            dead = metric(url, "webpaas_bridge_outbox_dead")
        finally:
            stop.set()
            bridge.stop()

        expected = {disk.id: disk.expected for disk in disks}
        disk_ids = {f"{disk.number:03d}": disk.id for disk in disks}
        problems.extend(sender.error for sender in senders if sender.error)
        if dead:
            problems.append(f"{dead:g} dead letters in the outbox")
        results = {}
        for name, arrivals in (
            ("slack", slack_arrivals(slack, disk_ids)),
            ("pagerduty", pagerduty_arrivals(pagerduty)),
            ("webhook", webhook_arrivals(webhook)),
        ):
            found, duplicates = check_target(name, arrivals, expected)
            problems.extend(found)
            results[name] = {"notifications": len(arrivals), "duplicates": duplicates}
        # A request cut off by a SIGKILL reaches the receiver with fewer
        # bytes than its Content-Length, and its signature cannot verify.
        # Any other rejection is a signing bug.
        cut_off = [
            request
            for request, _ in webhook.rejected
            if len(request.body) < int(request.headers.get("content-length", "0"))
        ]
        for request, reason in webhook.rejected:
            if request not in cut_off:
                problems.append(f"webhook: request rejected: {reason}")

    log_text = bridge.log_path.read_text(encoding="utf-8", errors="replace")
    leaked = [index for index, secret in enumerate(SECRETS) if secret in log_text]
    if leaked:
        problems.append(f"the bridge log contains secrets number {leaked}")
    summary = {
        "seed": arguments.seed,
        "cycles": arguments.cycles,
        "kills": kills,
        "disks": arguments.disks,
        "senders": arguments.senders,
        "messages_answered_2xx": counts.messages + counts.duplicate_posts,
        "messages": counts.messages,
        "duplicate_messages": counts.duplicate_posts,
        "posts": counts.posts,
        "posts_failed_or_5xx": counts.failed_posts,
        "level_changes": counts.level_changes,
        "expected_notifications_per_target": sum(map(len, expected.values())),
        "target_fault_bursts": target_faults,
        "webhook_requests_cut_off_by_kill": len(cut_off),
        "targets": results,
        "seconds": round(time.monotonic() - started, 1),
        "drain_seconds": round(drain_seconds, 1),
        "problems": problems,
    }
    if problems:
        summary["workdir"] = str(workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return summary


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100, help="SIGKILLs (100)")
    parser.add_argument("--disks", type=int, default=24, help="simulated disks (24)")
    parser.add_argument("--senders", type=int, default=4, help="sender threads (4)")
    parser.add_argument(
        "--max-run-seconds",
        type=float,
        default=1.5,
        help="maximum time between two kills, in seconds (1.5)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="messages per second per sender thread, on average (5)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument("--json", metavar="FILE", help="also write the summary here")
    arguments = parser.parse_args(argv)
    if arguments.seed is None:
        arguments.seed = random.SystemRandom().randrange(2**32)
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    summary = run(arguments)
    text = json.dumps(summary, indent=2)
    print(text)
    if arguments.json:
        Path(arguments.json).write_text(text + "\n", encoding="utf-8")
    return 1 if summary["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
