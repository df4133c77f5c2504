"""`requires-python` tells the truth about the pins, and `make` stops early on a Python it does not admit.

The pins of constraints.txt are what the virtualenv installs, so the metadata of the
installed distributions is the metadata of the pins: each must admit the oldest Python
that pyproject.toml admits (Debian 12's own python3 is 3.11.2, and a pin that wants more
breaks `make test` there before any test runs).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
CHECK_PYTHON = REPO / "scripts" / "check-python"


def _requires_python() -> SpecifierSet:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return SpecifierSet(project["requires-python"])


def _oldest_admitted(spec: SpecifierSet) -> Version:
    """The lowest bound of `>=`/`>` clauses: the oldest Python the project claims to support."""
    floors = [Version(s.version) for s in spec if s.operator in (">=", ">")]
    assert floors, f"requires-python {spec} has no lower bound"
    return max(floors)


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            pins[requirement.name] = specifier.version
    return pins


def test_every_pin_admits_the_oldest_python_the_project_claims() -> None:
    oldest = _oldest_admitted(_requires_python())
    refusing = []
    for name, pinned in _pins().items():
        try:
            installed = distribution(name)
        except PackageNotFoundError:
            continue  # a pin for another platform; pip never installed it here
        assert installed.version == pinned, f"{name}: {installed.version} installed, {pinned} pinned"
        wanted = installed.metadata.get("Requires-Python")
        if wanted and not SpecifierSet(wanted).contains(oldest):
            refusing.append(f"{name}=={pinned} (Requires-Python {wanted})")
    assert not refusing, f"requires-python admits {oldest}, but these pins do not: {refusing}"


def test_the_running_python_is_one_the_project_admits() -> None:
    assert _requires_python().contains(".".join(map(str, sys.version_info[:3])))


def _check(tmp_path: Path, requires: str) -> subprocess.CompletedProcess[str]:
    """scripts/check-python, run by this interpreter against a pyproject.toml that says `requires`."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(CHECK_PYTHON, tmp_path / "scripts" / "check-python")
    (tmp_path / "pyproject.toml").write_text(f'[project]\nrequires-python = "{requires}"\n', encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "check-python")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_python_passes_the_python_that_runs_the_tests(tmp_path: Path) -> None:
    done = _check(tmp_path, str(_requires_python()))
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("requires", [">=99", f"<{sys.version_info[0]}.{sys.version_info[1]}", ">=3.11,!=3"])
def test_check_python_stops_on_a_python_outside_the_range_and_says_which(
    tmp_path: Path, requires: str
) -> None:
    done = _check(tmp_path, requires)
    assert done.returncode == 1
    assert f"drillbook needs Python {requires}" in done.stderr
    assert re.search(r"is \d+\.\d+\.\d+\.", done.stderr), done.stderr
    assert "Hint:" in done.stderr
