"""The examples in docs/formats are what the code generates, and they verify."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fakes.events import ROUTING_KEY, context, make_event, run, webhook_integration
from fakes.fixtures import WEBHOOK_SHARED_KEY
from fakes.webhook_receiver import WebhookReceiver, verify_signature

from bridge.model import EventType
from bridge.targets.pagerduty import build_event
from bridge.targets.slack import build_message
from bridge.targets.webhook import WebhookTarget, build_request, event_body

DOCS = Path(__file__).resolve().parents[3] / "docs" / "formats"
SENT_AT = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def code_blocks(name: str, language: str) -> list[str]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)\n```", text, flags=re.DOTALL)


def json_blocks(name: str) -> list[Any]:
    return [json.loads(block) for block in code_blocks(name, "json")]


def test_webhook_doc_example_matches_code() -> None:
    (example,) = json_blocks("webhook.md")

    assert example == event_body(make_event(EventType.WARNING), SENT_AT)


def test_webhook_doc_wire_example_verifies() -> None:
    (wire,) = code_blocks("webhook.md", "http")
    head, body = wire.split("\n\n", 1)
    headers = dict(line.split(": ", 1) for line in head.splitlines()[1:])
    expected_body, expected_headers = build_request(
        make_event(EventType.WARNING), WEBHOOK_SHARED_KEY, SENT_AT
    )

    assert body.encode() == expected_body
    assert headers == expected_headers
    verify_signature(WEBHOOK_SHARED_KEY, headers["X-JWS-Signature"], body.encode())


def test_webhook_doc_receiver_check_runs() -> None:
    python_blocks = code_blocks("webhook.md", "python")
    namespace: dict[str, Any] = {}
    _, expected_headers = build_request(
        make_event(EventType.WARNING), WEBHOOK_SHARED_KEY, SENT_AT
    )
    body, _ = build_request(make_event(EventType.WARNING), WEBHOOK_SHARED_KEY, SENT_AT)

    exec(python_blocks[0], namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify"]

    assert verify(WEBHOOK_SHARED_KEY, expected_headers["X-JWS-Signature"], body)
    assert not verify(
        WEBHOOK_SHARED_KEY, expected_headers["X-JWS-Signature"], body + b" "
    )


def test_slack_doc_examples_match_code() -> None:
    warning, clear = json_blocks("slack.md")
    generated_clear = build_message(
        make_event(EventType.ALL_CLEAR), "#alerts", "1700000000.000100"
    )

    assert warning == build_message(make_event(EventType.WARNING), "#alerts", None)
    assert clear == {name: generated_clear[name] for name in clear}


def test_pagerduty_doc_examples_match_code() -> None:
    trigger, resolve = json_blocks("pagerduty.md")

    assert trigger == build_event(make_event(EventType.WARNING), ROUTING_KEY)
    assert resolve == build_event(make_event(EventType.ALL_CLEAR), ROUTING_KEY)


def test_doc_receiver_check_verifies_real_request(
    signed_webhook_receiver: WebhookReceiver,
) -> None:
    namespace: dict[str, Any] = {}
    exec(code_blocks("webhook.md", "python")[0], namespace)  # noqa: S102
    target = WebhookTarget(allow_private_targets=True)
    integration = webhook_integration(
        f"{signed_webhook_receiver.url}/hook", WEBHOOK_SHARED_KEY
    )

    run(lambda client: target.send(make_event(), context(integration, client)))
    (request,) = signed_webhook_receiver.requests
    signature = request.headers["x-jws-signature"]

    assert namespace["verify"](WEBHOOK_SHARED_KEY, signature, request.body)
    assert not namespace["verify"](WEBHOOK_SHARED_KEY, signature, request.body[:-1])
