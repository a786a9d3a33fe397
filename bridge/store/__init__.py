"""Durable storage for disk state, events, the outbox and integrations."""
