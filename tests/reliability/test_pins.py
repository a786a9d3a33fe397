"""Every package that the project and its test extra need is pinned in constraints.txt.

The pins must match the installed versions.

``deploy/local/setup.sh`` installs with ``pip install -c constraints.txt
-e ".[test]"``, and CI runs it through ``.ci/run`` and ``tests/run.sh``, so a
dependency missing from constraints.txt would float to whatever the index
serves on the day.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    pinned = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pinned[canonicalize_name(name)] = version.strip()
    return pinned


def closure(root: str, extras: set[str]) -> set[str]:
    """Return the names of every installed distribution ``root[extras]`` needs."""
    seen: set[str] = set()
    pending = [(root, extras)]
    while pending:
        name, wanted_extras = pending.pop()
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            environments = [{"extra": extra} for extra in wanted_extras or {""}]
            if requirement.marker and not any(
                requirement.marker.evaluate(environment) for environment in environments
            ):
                continue
            key = canonicalize_name(requirement.name)
            if key not in seen:
                seen.add(key)
                pending.append((requirement.name, set(requirement.extras)))
    return seen


def test_test_extra_fully_pinned() -> None:
    pinned = pins()
    needed = closure("webpaas-health", {"test"})

    unpinned = sorted(needed - pinned.keys())
    wrong = sorted(
        f"{name} {metadata.version(name)} installed, {pinned[name]} pinned"
        for name in needed & pinned.keys()
        if metadata.version(name) != pinned[name]
    )

    assert "schemathesis" in needed
    assert unpinned == []
    assert wrong == []


def test_setup_installs_with_constraints() -> None:
    setup = (REPO / "deploy" / "local" / "setup.sh").read_text(encoding="utf-8")
    run = (REPO / "tests" / "run.sh").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")

    assert re.search(r"pip install .*-c constraints\.txt -e \"\.\[test\]\"", setup)
    assert "bash deploy/local/setup.sh" in run
    assert "tests/run.sh" in ci
