#!/usr/bin/env bash
# Set up this machine for the tests (idempotent), then run the linters and
# the whole suite. Run as root: the suite mounts tmpfs filesystems and
# starts real Prometheus, Alertmanager and node_exporter on 127.0.0.1.
set -euo pipefail

cd "$(dirname "$0")/.."
bash deploy/local/setup.sh

. .venv/bin/activate
ruff format --check .
ruff check .
exec python -m pytest "$@"
