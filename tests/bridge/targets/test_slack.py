"""health.slack against the fake Slack Web API: messages, threads, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fakes.events import DISK_LABELS, context, make_event, run, slack_integration
from fakes.slack import DEFAULT_TOKEN, SlackFake

from bridge.model import EventType
from bridge.targets.base import Delivered, Failed, Problem, Retry
from bridge.targets.slack import (
    MAX_FIELD_CHARS,
    MAX_HEADER_CHARS,
    MAX_SECTION_CHARS,
    SlackTarget,
    build_message,
)


def send(
    slack: SlackFake,
    event_type: EventType = EventType.WARNING,
    thread_ref: str | None = None,
    token: str = DEFAULT_TOKEN,
    channel: str = "#alerts",
    timeout: float = 5.0,
    **fields: Any,
):
    target = SlackTarget(slack.api_url)
    integration = slack_integration(token, channel)
    event = make_event(event_type, **fields)
    return run(
        lambda client: target.send(event, context(integration, client, thread_ref)),
        timeout,
    )


def all_text(message: dict[str, Any]) -> list[str]:
    """Every text string of a message: fallback, block texts and fields."""
    texts = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
        texts.extend(element["text"] for element in block.get("elements", []))
    return texts


def test_warning_opens_thread(slack_fake: SlackFake) -> None:
    outcome = send(slack_fake)

    (request,) = slack_fake.requests
    (message,) = slack_fake.messages
    assert outcome == Delivered(thread_ref=message["ts"])
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert message["channel"] == "#alerts"
    assert "thread_ts" not in message
    assert message["mrkdwn"] is False


def test_message_is_readable(slack_fake: SlackFake) -> None:
    send(slack_fake)

    (message,) = slack_fake.messages
    header = message["blocks"][0]
    texts = "\n".join(all_text(message))
    assert header["type"] == "header"
    assert header["text"]["text"] == ":warning: Low disk space: warning"
    assert "14.52%" in texts
    assert "warning below 20%, critical below 10%" in texts
    assert "/var/lib/mysql" in texts
    assert "Service\ndb" in texts
    assert "<https://runbooks.example.com/low-disk|Runbook>" in texts
    assert "g0.expr=x&amp;g0.tab=1|Alert source>" in texts
    assert message["text"].startswith("Low disk space: warning on db /var/lib/mysql")


def test_all_clear_replies_in_thread_and_broadcasts(slack_fake: SlackFake) -> None:
    opened = send(slack_fake, EventType.WARNING)

    cleared = send(slack_fake, EventType.ALL_CLEAR, thread_ref=opened.thread_ref)

    first, second = slack_fake.messages
    assert second["thread_ts"] == first["ts"]
    assert second["reply_broadcast"] is True
    assert cleared == Delivered(thread_ref=first["ts"])
    assert (
        second["blocks"][0]["text"]["text"] == ":white_check_mark: Disk space all clear"
    )


def test_escalation_stays_in_incident_thread(slack_fake: SlackFake) -> None:
    opened = send(slack_fake, EventType.WARNING)

    escalated = send(slack_fake, EventType.CRITICAL, thread_ref=opened.thread_ref)

    assert slack_fake.messages[1]["thread_ts"] == opened.thread_ref
    assert escalated == Delivered(thread_ref=opened.thread_ref)


def test_warning_from_ok_ignores_stale_thread(slack_fake: SlackFake) -> None:
    outcome = send(slack_fake, EventType.WARNING, thread_ref="1600000000.000001")

    (message,) = slack_fake.messages
    assert "thread_ts" not in message
    assert outcome == Delivered(thread_ref=message["ts"])


HOSTILE_LABELS = {
    **DISK_LABELS,
    "service": "<!channel> & <https://evil.example|click> *bold* _it_ `code`",
    "mountpoint": "/mnt/a\nb\tc",
    "team": 'équipe 💾 数据 "quoted" [x] {y}',
    **{f"extra{index:02d}": f"value {index}" for index in range(10)},
    "huge": "h" * 100_000,
}


def test_hostile_labels_are_escaped_and_truncated(slack_fake: SlackFake) -> None:
    outcome = send(slack_fake, labels=HOSTILE_LABELS, description="<&>" * 5000)

    (request,) = slack_fake.requests
    message = json.loads(request.body)
    texts = all_text(message)
    joined = "\n".join(texts)
    assert isinstance(outcome, Delivered)
    assert "<!channel>" not in joined
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in joined
    assert "*bold* _it_ `code`" in joined
    assert "équipe 💾 数据" in joined
    assert "huge=" + "h" * 10 in joined
    assert "… and 99" in joined  # the huge label, cut to a few hundred
    assert "more characters" in joined
    assert len(message["blocks"][0]["text"]["text"]) <= MAX_HEADER_CHARS
    for block in message["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= MAX_SECTION_CHARS
        for field in block.get("fields", []):
            assert len(field["text"]) <= MAX_FIELD_CHARS
            assert field["type"] == "plain_text"


def test_many_labels_are_counted() -> None:
    labels = {**DISK_LABELS, **{f"extra{index:02d}": "v" for index in range(30)}}

    message = build_message(make_event(labels=labels), "#alerts", None)

    assert any("… and 11 more labels" in text for text in all_text(message))


def test_fallback_text_is_plain_and_escaped() -> None:
    event = make_event(labels={**DISK_LABELS, "service": "a<b>&c_d*"})

    message = build_message(event, "#alerts", None)

    assert "a&lt;b&gt;&amp;c_d*" in message["text"]
    assert message["mrkdwn"] is False


def test_ratelimited_429_is_retried_after(slack_fake: SlackFake) -> None:
    slack_fake.fail_next_error("ratelimited", retry_after=30)

    outcome = send(slack_fake)

    assert outcome == Retry("Slack rate limit: ratelimited", after=30.0)
    assert slack_fake.messages == []


def test_ratelimited_in_200_is_retried(slack_fake: SlackFake) -> None:
    slack_fake.fail_next_error("ratelimited", status=200)

    outcome = send(slack_fake)

    assert outcome == Retry("Slack rate limit: ratelimited")


def test_ratelimited_in_200_honours_retry_after(slack_fake: SlackFake) -> None:
    slack_fake.fail_next_error("ratelimited", status=200, retry_after=12)

    outcome = send(slack_fake)

    assert outcome == Retry("Slack rate limit: ratelimited", after=12.0)
    assert slack_fake.messages == []


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("invalid_auth", "Slack rejected the token: invalid_auth"),
        ("not_authed", "Slack rejected the token: not_authed"),
        ("token_revoked", "Slack rejected the token: token_revoked"),
        ("account_inactive", "Slack rejected the token: account_inactive"),
        ("missing_scope", "Slack rejected the token: missing_scope"),
        ("channel_not_found", "Slack could not post to the channel: channel_not_found"),
        ("not_in_channel", "Slack could not post to the channel: not_in_channel"),
        ("is_archived", "Slack could not post to the channel: is_archived"),
        ("msg_too_long", "Slack rejected the message: msg_too_long"),  # known, final
        ("brand_new_error", "Slack rejected the message: brand_new_error"),  # unknown
    ],
)
def test_final_errors_fail(slack_fake: SlackFake, error: str, expected: str) -> None:
    slack_fake.fail_next_error(error)

    outcome = send(slack_fake)

    assert outcome == Failed(expected)


@pytest.mark.parametrize(
    "error", ["internal_error", "fatal_error", "service_unavailable"]
)
def test_slack_server_errors_retry(slack_fake: SlackFake, error: str) -> None:
    slack_fake.fail_next_error(error)

    outcome = send(slack_fake)

    assert isinstance(outcome, Retry)


def test_fake_rejects_unknown_token(slack_fake: SlackFake) -> None:
    outcome = send(slack_fake, token="xoxb-wrong")

    assert outcome == Failed("Slack rejected the token: invalid_auth")


def test_fake_rejects_unknown_channel(slack_fake: SlackFake) -> None:
    outcome = send(slack_fake, channel="#nowhere")

    assert outcome == Failed("Slack could not post to the channel: channel_not_found")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_5xx_retried(slack_fake: SlackFake, status: int) -> None:
    slack_fake.fail_next(status=status, body="upstream trouble")

    outcome = send(slack_fake)

    assert outcome == Retry(f"Slack answered HTTP {status}")


def test_non_json_200_retried(slack_fake: SlackFake) -> None:
    slack_fake.fail_next(status=200, body="<html>proxy</html>")

    outcome = send(slack_fake)

    assert outcome == Retry("Slack answered HTTP 200 without JSON")


def test_timeout_retried(slack_fake: SlackFake) -> None:
    slack_fake.delay_next(seconds=3)

    outcome = send(slack_fake, timeout=0.3)

    assert outcome == Retry("Slack did not answer in time (ReadTimeout)")


def test_reasons_never_contain_token(slack_fake: SlackFake) -> None:
    token = "xoxb-s3cr3t-token"

    outcomes = [send(slack_fake, token=token)]
    slack_fake.fail_next(status=500)
    outcomes.append(send(slack_fake, token=token))

    for outcome in outcomes:
        assert "s3cr3t" not in outcome.reason
        assert "s3cr3t" not in repr(outcome)


def check(slack: SlackFake, token: str = DEFAULT_TOKEN, channel: str = "#alerts"):
    target = SlackTarget(slack.api_url)
    integration = slack_integration(token, channel)
    return run(lambda client: target.check(context(integration, client)))


def test_check_passes_and_posts_test_message(slack_fake: SlackFake) -> None:
    problems = check(slack_fake)

    paths = [request.path for request in slack_fake.requests]
    (message,) = slack_fake.messages
    assert problems == []
    assert paths == ["/api/auth.test", "/api/chat.postMessage"]
    assert message["blocks"][0]["text"]["text"].startswith(":warning: [TEST]")


def test_check_names_rejected_token(slack_fake: SlackFake) -> None:
    problems = check(slack_fake, token="xoxb-not-known")

    assert problems == [Problem("token", "Slack rejected the token: invalid_auth")]
    assert slack_fake.messages == []


def test_check_reports_unreachable_slack() -> None:
    with SlackFake() as stopped:
        api_url = stopped.api_url
    target = SlackTarget(api_url)
    integration = slack_integration(DEFAULT_TOKEN)

    problems = run(lambda client: target.check(context(integration, client)))

    assert problems == [
        Problem(
            "integration",
            "Slack could not check the token: could not reach Slack (ConnectError)",
        )
    ]


def test_missing_channel_fails(slack_fake: SlackFake) -> None:
    target = SlackTarget(slack_fake.api_url)
    integration = slack_integration(DEFAULT_TOKEN)
    integration.settings.clear()

    outcome = run(
        lambda client: target.send(make_event(), context(integration, client))
    )

    assert outcome == Failed("the integration has no channel")
    assert slack_fake.requests == []


def test_check_names_channel_problem(slack_fake: SlackFake) -> None:
    slack_fake.channel_errors["#alerts"] = "not_in_channel"

    problems = check(slack_fake)

    assert problems == [
        Problem("channel", "Slack could not post to the channel: not_in_channel")
    ]
