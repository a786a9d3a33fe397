"""Alertmanager-to-notification bridge: per-disk state, durable outbox, targets."""
