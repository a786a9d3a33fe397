#!/usr/bin/env bash
# Install what webpaas-health needs on Debian 12, idempotently: the Debian
# packages for Python's venv module, Prometheus, Alertmanager and
# node_exporter, and a virtual environment in .venv with the project and its
# test tools at the versions pinned in constraints.txt. Needs root only when
# a Debian package is missing.
set -euo pipefail

cd "$(dirname "$0")/../.."

# python3-venv: Debian's python3 has no ensurepip without it, so
# `python3 -m venv` fails on a fresh machine.
packages=(python3 python3-venv prometheus prometheus-alertmanager prometheus-node-exporter)
# The services that these Debian packages start at installation. They
# listen on every interface (9090, 9093 and 9094, 9100), and the local stack
# runs its own instances on 127.0.0.1.
services=(prometheus prometheus-alertmanager prometheus-node-exporter)

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

    # Stop and disable only the services of packages installed just now: a
    # service that was there before is the administrator's own.
    if [ -d /run/systemd/system ]; then
        for service in "${services[@]}"; do
            if [[ " ${missing[*]} " == *" $service "* ]]; then
                echo "setup: stopping and disabling Debian's $service.service, which listens on every interface"
                systemctl disable --now "$service.service" || true
            fi
        done
    fi
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
