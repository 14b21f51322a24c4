"""The locked install (issue 17 item 2: unpinned transitive dependencies drifted under us, and a fresh install
got a ``distributed`` that refused the sweep's LocalCluster). constraints.txt must pin every direct and
transitive dependency of ``nar[dev,distributed]``, the environment the tests run in must be that set, and every
command the project gives for installing it (README, .ci/run, the scale-out tests' skip reason) must use it."""

from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .helpers import ROOT

EXTRAS = ("dev", "distributed")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, raw in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;=<>!~]+)", line)
        assert match, f"constraints.txt:{number}: {raw!r} is not an exact pin (name==version)"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt:{number}: {match[1]} pinned twice"
        pins[name] = match[2]
    return pins


def _wanted(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in extras | {""})


@pytest.mark.fault(
    category="config",
    fault="a direct or transitive dependency of nar[dev,distributed] not pinned in constraints.txt, or the test "
    "environment holding another version of it than the pin (how distributed 2026.8.0 arrived untested)",
    expected="every package of the dependency closure is pinned exactly in constraints.txt, and every installed "
    "one at its pinned version",
)
def test_constraints_pin_the_whole_dependency_closure():
    pins = _pins()
    missing, drifted = [], []
    seen: set[str] = set()
    queue: list[tuple[str, set[str]]] = [("nar", set(EXTRAS))]
    while queue:
        name, extras = queue.pop()
        key = canonicalize_name(name)
        if (key, frozenset(extras)) in seen:
            continue
        seen.add((key, frozenset(extras)))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here (an extra the test environment left out): its pin is checked below
        if key != "nar":
            if key not in pins:
                missing.append(name)
            elif dist.version != pins[key]:
                drifted.append(f"{name} {dist.version} installed, {pins[key]} pinned")
        for text in dist.requires or []:
            requirement = Requirement(text)
            if not _wanted(requirement, extras):
                continue
            dep = canonicalize_name(requirement.name)
            if dep not in pins:
                missing.append(f"{requirement.name} (required by {name})")
            queue.append((requirement.name, set(requirement.extras)))
    assert not sorted(set(missing)), f"not pinned in constraints.txt: {sorted(set(missing))}"
    assert not drifted, f"the environment is not the locked one: {drifted}"


INSTALL = re.compile(r"pip3? install\b[^\n`]*?-e\s+['\"]?\.")  # an install of the project itself


@pytest.mark.fault(
    category="config",
    fault="a command the project documents or runs to install itself (README set-up, .ci/run, the Beyond one "
    "machine extras, tests/scaleout's skip reason) without constraints.txt",
    expected="every such `pip install ... -e .[...]` line passes -c constraints.txt",
    inputs=0,
)
def test_every_install_of_the_project_uses_the_constraints():
    sources = [ROOT / "README.md", ROOT / ".ci" / "run", ROOT / "pyproject.toml", ROOT / "tests/scaleout/services.py"]
    found, unlocked = 0, []
    for path in sources:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INSTALL.search(line):
                found += 1
                if "-c constraints.txt" not in line:
                    unlocked.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert found >= 5, f"only {found} install lines found: the pattern no longer matches the README"
    assert not unlocked, "installs without -c constraints.txt:\n" + "\n".join(unlocked)
    readme = (ROOT / "README.md").read_text()
    setup = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv && ")]
    assert len(setup) == 2 and all("-c constraints.txt" in line for line in setup), setup
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install -q -c constraints.txt -e '.[dev]'" in ci, ci
