#!/usr/bin/env bash
# Install what webpaas-health needs on Debian 12, idempotently: the Debian
# packages for Prometheus, Alertmanager and node_exporter, and a virtual
# environment in .venv with the project and its test tools at the versions
# pinned in constraints.txt.
set -euo pipefail

cd "$(dirname "$0")/../.."

packages=(prometheus prometheus-alertmanager prometheus-node-exporter)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
        missing+=("$package")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages: ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -c constraints.txt -e ".[test]"
    touch "$stamp"
fi
