"""The bridge's own Prometheus metrics, in a registry of their own.

A fresh `BridgeMetrics` per app keeps tests independent and keeps the
process's default registry out of ``/metrics``. Labels carry integration
types, levels and outcomes only: never an integration's settings or
secrets, and never disk labels, whose number has no bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from bridge.integrations import TYPES
from bridge.store.base import OutboxStats

DELIVERY_OUTCOMES = ("delivered", "retry", "failed", "expired")
PRUNED_TABLES = ("deliveries", "events")


class BridgeMetrics:
    """Counters, gauges and a histogram of the bridge, registered in ``registry``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages = Counter(
            "webpaas_bridge_messages_received_total",
            "Alertmanager webhook messages received, by HTTP status answered.",
            ["code"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "webpaas_bridge_alerts_received_total",
            "Alerts in accepted webhook messages, by alert status.",
            ["status"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "webpaas_bridge_transitions_total",
            "Changes of a disk's level, by the new level.",
            ["level"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "webpaas_bridge_delivery_attempts_total",
            "Delivery attempts, by integration type and outcome "
            "(delivered, retry, failed, expired).",
            ["integration_type", "outcome"],
            registry=self.registry,
        )
        self.retries = Counter(
            "webpaas_bridge_delivery_retries_total",
            "Deliveries scheduled for another attempt, by integration type.",
            ["integration_type"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "webpaas_bridge_dead_letters_total",
            "Deliveries given up and kept as dead letters, by integration type.",
            ["integration_type"],
            registry=self.registry,
        )
        self.outbox_depth = Gauge(
            "webpaas_bridge_outbox_pending",
            "Deliveries waiting in the outbox.",
            registry=self.registry,
        )
        self.outbox_dead = Gauge(
            "webpaas_bridge_outbox_dead",
            "Dead letters kept in the outbox.",
            registry=self.registry,
        )
        self.oldest_pending = Gauge(
            "webpaas_bridge_outbox_oldest_pending_age_seconds",
            "Age of the oldest pending delivery; 0 when none is pending.",
            registry=self.registry,
        )
        self.latency = Histogram(
            "webpaas_bridge_delivery_duration_seconds",
            "Duration of one delivery attempt, by integration type.",
            ["integration_type"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.worker_up = Gauge(
            "webpaas_bridge_delivery_worker_up",
            "1 while the delivery worker runs.",
            registry=self.registry,
        )
        self.pruned_rows = Counter(
            "webpaas_bridge_store_pruned_rows_total",
            "Rows deleted from the store by retention, by table.",
            ["table"],
            registry=self.registry,
        )

        self._initialize_series()

    def _initialize_series(self) -> None:
        # Every known label set starts at 0, so that rate() and increase()
        # see the first retry or dead letter instead of a series appearing.
        for status in ("firing", "resolved"):
            self.alerts.labels(status)
        for level in ("ok", "warning", "critical"):
            self.transitions.labels(level)
        for integration_type in TYPES:
            for outcome in DELIVERY_OUTCOMES:
                self.deliveries.labels(integration_type, outcome)
            self.retries.labels(integration_type)
            self.dead_letters.labels(integration_type)
            self.latency.labels(integration_type)
        for table in PRUNED_TABLES:
            self.pruned_rows.labels(table)

    def set_outbox(self, stats: OutboxStats) -> None:
        self.outbox_depth.set(stats.pending)
        self.outbox_dead.set(stats.dead)
        self.oldest_pending.set(stats.oldest_pending_age_seconds)
