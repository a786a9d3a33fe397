"""The target for each integration type, built from the settings.

The Slack API URL and the PagerDuty events URL are configuration, so that
tests and proxies can point them elsewhere. Webhook URLs come from each
integration and pass the SSRF guard unless private targets are allowed.

    targets = build_targets(slack_api_url, pagerduty_events_url, False)
    target = target_for("health.slack", targets)
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge import netguard
from bridge.errors import BridgeError
from bridge.integrations import PAGERDUTY, SLACK, TYPES, WEBHOOK
from bridge.targets.base import Target
from bridge.targets.pagerduty import PagerDutyTarget
from bridge.targets.slack import SlackTarget
from bridge.targets.webhook import WebhookTarget


class UnknownIntegrationType(BridgeError, KeyError):
    """No target handles the integration type."""

    def __init__(self, type_: str) -> None:
        super().__init__(type_)
        self.type = type_

    def __str__(self) -> str:
        return f"unknown integration type {self.type!r}; expected one of {TYPES}"


def build_targets(
    slack_api_url: str,
    pagerduty_events_url: str,
    allow_private_targets: bool,
    *,
    resolver: netguard.Resolver = netguard.system_resolver,
) -> dict[str, Target]:
    """Build one target per integration type.

    Args:
        slack_api_url: Web API base, such as ``https://slack.com/api``.
        pagerduty_events_url: the enqueue URL, such as
            ``https://events.pagerduty.com/v2/enqueue``.
        allow_private_targets: let webhooks reach loopback and private
            addresses (tests and local use only).
        resolver: resolves webhook host names; tests pass a fake one.
    """
    return {
        SLACK: SlackTarget(slack_api_url),
        PAGERDUTY: PagerDutyTarget(pagerduty_events_url),
        WEBHOOK: WebhookTarget(
            allow_private_targets=allow_private_targets, resolver=resolver
        ),
    }


def target_for(type_: str, targets: Mapping[str, Target]) -> Target:
    """Return the target in ``targets`` that handles an integration type.

    Raises:
        UnknownIntegrationType: no target handles ``type_``.
    """
    try:
        return targets[type_]
    except KeyError:
        raise UnknownIntegrationType(type_) from None
