"""Write prometheusrule.yaml: the bundled rules as a prometheus-operator object.

The groups are copied unchanged from rules/webpaas-disk.rules.yml, so the
rules that Prometheus evaluates in Kubernetes are the tested ones. Run it
after rendering new rules, from the repository root::

    .venv/bin/python deploy/kubernetes/generate_prometheusrule.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "rules" / "webpaas-disk.rules.yml"
TARGET = Path(__file__).with_name("prometheusrule.yaml")

HEADER = """\
# The bundled webpaas-health rules for prometheus-operator. Generated from
# rules/webpaas-disk.rules.yml by deploy/kubernetes/generate_prometheusrule.py;
# do not edit. The label below must match your Prometheus object's
# ruleSelector (kube-prometheus-stack selects release: <its release name>).
"""


class _Dumper(yaml.SafeDumper):
    """Keep multi-line PromQL as literal blocks, as in the rule file."""


def _represent_text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_text)


def render() -> str:
    """Return the PrometheusRule manifest as YAML text."""
    rules = yaml.safe_load(SOURCE.read_text(encoding="utf-8"))
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "webpaas-disk",
            "labels": {
                "app.kubernetes.io/name": "webpaas-health",
                "release": "kube-prometheus-stack",
            },
        },
        "spec": {"groups": rules["groups"]},
    }
    body = yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=4096)
    return HEADER + body


def main() -> int:
    TARGET.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
