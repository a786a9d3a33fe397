#!/usr/bin/env bash
# Set up this machine for the tests (idempotent), then run the linters and
# the whole suite. Run as root: the suite mounts tmpfs filesystems and
# starts real Prometheus, Alertmanager and node_exporter on 127.0.0.1.
# Arguments go to pytest, for example `bash tests/run.sh tests/exporter -x`.
set -euo pipefail

cd "$(dirname "$0")/.."
bash deploy/local/setup.sh

# Debian packages that only the tests use, beyond what setup.sh installs:
# wrk drives the ingest benchmark's smoke run, systemd gives systemd-analyze
# for the unit files, iproute2 gives ss for the listening-port checks, and
# util-linux gives mount and unshare.
test_packages=(wrk systemd iproute2 util-linux)
missing=()
for package in "${test_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$package")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "tests/run.sh: missing Debian packages: ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends --no-upgrade "${missing[@]}"
fi

. .venv/bin/activate
ruff format --check .
ruff check .

status=0
python -m pytest "$@" || status=$?
# pytest exits 5 when it collected no test: a wrong path or -k expression
# would otherwise look like a plain failure, or pass where 5 is ignored.
if [ "$status" -eq 5 ]; then
    echo "tests/run.sh: pytest collected no tests; check the paths and -k or -m options" >&2
    exit 1
fi
exit "$status"
