"""The tables and indexes of the SQLite store.

Every statement is ``IF NOT EXISTS``, so the script runs on each open and
creates what a new file lacks. The store's queries name indexes in
``INDEXED BY``, and SQLite rejects such a query when its index is missing,
so rename an index only together with those queries.
"""

# Written to the meta table of a new file; an existing file keeps the
# version it was created with.
SCHEMA_VERSION = "1"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS integrations (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    source TEXT NOT NULL,
    settings TEXT NOT NULL,
    secrets TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS disks (
    id TEXT PRIMARY KEY,
    level INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    disk_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id),
    integration_id TEXT NOT NULL,
    integration_type TEXT NOT NULL,
    disk_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS deliveries_due
    ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_order
    ON deliveries (integration_id, disk_id, id) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_status ON deliveries (status, id);
CREATE INDEX IF NOT EXISTS deliveries_event ON deliveries (event_id);
CREATE INDEX IF NOT EXISTS deliveries_delivered
    ON deliveries (delivered_at) WHERE status = 'delivered';
CREATE INDEX IF NOT EXISTS deliveries_dead
    ON deliveries (created_at) WHERE status = 'dead';
CREATE INDEX IF NOT EXISTS events_created ON events (created_at);
CREATE TABLE IF NOT EXISTS threads (
    integration_id TEXT NOT NULL,
    disk_id TEXT NOT NULL,
    thread_ref TEXT NOT NULL,
    PRIMARY KEY (integration_id, disk_id)
);
"""
