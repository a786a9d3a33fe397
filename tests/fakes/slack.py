"""A fake Slack Web API: ``chat.postMessage`` and ``auth.test`` on 127.0.0.1.

It responds the way Slack documents these methods: HTTP 200 with
``{"ok": true, ...}`` on success and ``{"ok": false, "error": "..."}`` on
failure (``not_authed``, ``invalid_auth``, ``channel_not_found``, ...), and
HTTP 429 with ``Retry-After`` and ``error: ratelimited`` when rate limited.

    slack = SlackFake(tokens={"xoxb-1-good"}, channels={"#alerts": "C0ALERTS00"})
    with slack:
        ...post to f"{slack.url}/api/chat.postMessage"...
        slack.fail_next_error("ratelimited", retry_after=3)
        slack.token_errors["xoxb-1-good"] = "token_revoked"
    slack.messages          # the accepted chat.postMessage bodies, with "ts"

The base URL to configure as the bridge's Slack API URL is ``api_url``.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from fakes.server import FakeServer, RecordedRequest, Response

DEFAULT_TOKEN = "xoxb-000000000-fake-slack-token"
DEFAULT_CHANNELS = {"#alerts": "C0ALERTS00"}
# A fixed, plausible workspace for auth.test responses.
TEAM = {
    "team": "Fake Workspace",
    "team_id": "T0FAKE0000",
    "url": "https://fake.invalid/",
}


class SlackFake(FakeServer):
    """Fake Slack Web API; see the module docstring."""

    def __init__(
        self,
        tokens: set[str] | None = None,
        channels: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.tokens = set(tokens) if tokens is not None else {DEFAULT_TOKEN}
        # Channel name ("#alerts") to id ("C0ALERTS00").
        self.channels = (
            dict(channels) if channels is not None else dict(DEFAULT_CHANNELS)
        )
        # Token to the error Slack returns for it (token_revoked, ...).
        self.token_errors: dict[str, str] = {}
        # Channel name or id to the error a post there returns
        # (not_in_channel, is_archived, ...).
        self.channel_errors: dict[str, str] = {}
        self._messages: list[dict[str, Any]] = []
        self._ts = itertools.count(100)
        self._messages_lock = threading.Lock()

    @property
    def api_url(self) -> str:
        """Base URL of the Web API, as in ``https://slack.com/api``."""
        return f"{self.url}/api"

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Accepted chat.postMessage bodies, each with the ``ts`` it was given."""
        with self._messages_lock:
            return list(self._messages)

    def fail_next_error(
        self,
        error: str,
        count: int = 1,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Respond to the next ``count`` requests with ``{"ok": false, "error": ...}``.

        ``ratelimited`` defaults to HTTP 429, as Slack sends it; every other
        error to HTTP 200.
        """
        if status is None:
            status = 429 if error == "ratelimited" else 200
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        self.fail_next(
            count, status=status, body={"ok": False, "error": error}, headers=headers
        )

    def respond(self, request: RecordedRequest) -> Response:
        path = request.path.split("?", 1)[0]
        if path == "/api/auth.test":
            return self._auth_test(request)
        if path == "/api/chat.postMessage" and request.method == "POST":
            return self._post_message(request)
        return _error("unknown_method", status=404)

    def _token_error(self, request: RecordedRequest) -> str | None:
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return "not_authed"
        token = authorization.removeprefix("Bearer ")
        if token in self.token_errors:
            return self.token_errors[token]
        if token not in self.tokens:
            return "invalid_auth"
        return None

    def _auth_test(self, request: RecordedRequest) -> Response:
        error = self._token_error(request)
        if error:
            return _error(error)
        return Response(
            200,
            {"ok": True, **TEAM, "user": "health-bot", "user_id": "U0BOT00000"},
        )

    def _post_message(self, request: RecordedRequest) -> Response:
        error = self._token_error(request)
        if error:
            return _error(error)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _error("invalid_form_data")
        try:
            body = request.json()
        except ValueError:
            return _error("invalid_json")
        if not isinstance(body, dict):
            return _error("invalid_json")

        channel = body.get("channel")
        channel_id = self._channel_id(channel)
        if channel_id is None:
            return _error("channel_not_found")
        for key in (channel, channel_id):
            if key in self.channel_errors:
                return _error(self.channel_errors[key])
        if not body.get("text") and not body.get("blocks"):
            return _error("no_text")

        ts = f"1700000000.{next(self._ts):06d}"
        with self._messages_lock:
            self._messages.append({**body, "ts": ts})
        message = {"type": "message", "text": body.get("text", ""), "ts": ts}
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        return Response(
            200, {"ok": True, "channel": channel_id, "ts": ts, "message": message}
        )

    def _channel_id(self, channel: Any) -> str | None:
        if not isinstance(channel, str):
            return None
        if channel in self.channels.values():
            return channel
        name = channel if channel.startswith("#") else f"#{channel}"
        return self.channels.get(name)


def _error(error: str, status: int = 200) -> Response:
    return Response(status, {"ok": False, "error": error})
