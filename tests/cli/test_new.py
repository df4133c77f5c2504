"""`drillbook new`: a runbook's page and notebook in their fixed shape, and lint naming every
place the author still has to write, until there is none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what lint reads in this repository."""
    for name in ("policy", "docs", "notebooks", "tests/drills", "sandbox/config/rules"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("node_modules", "vendor"))
    for name in ("mkdocs.yml", "pyproject.toml", "sandbox/faults.yml"):
        shutil.copy2(REPO / name, tmp_path / name)
    return tmp_path


def drillbook(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "drillbook", *args], cwd=project, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip


def lint(project: Path) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "drillbook.lint", "--root", str(project)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return [line for line in done.stdout.splitlines() if ": error: " in line or ": warning: " in line]


def test_a_new_runbook_is_linted_to_completion_one_named_place_at_a_time(project: Path) -> None:
    done = drillbook(project, "new", "disk-full", "--title", "Disk full", "--severity", "P1")
    assert done.returncode == 0, done.stderr
    page, notebook = project / "docs/runbooks/disk-full.md", project / "notebooks/disk-full.py"
    assert "severity: SEV2" in page.read_text(encoding="utf-8")  # the alias, as the policy's id
    assert 'runbook_steps("disk-full", "diagnosis")' in page.read_text(encoding="utf-8")
    assert '# %% tags=["parameters"]' in notebook.read_text(encoding="utf-8")
    todo = lint(project)
    assert todo, "lint names what is left to write"
    assert all(line.startswith("docs/runbooks/disk-full.md:") and "still to write" in line for line in todo)
    assert len(todo) == 5  # the description and four sections
    page.write_text(
        page.read_text(encoding="utf-8").replace("FILL IN: ", "").replace("FILL IN ", ""), "utf-8"
    )
    assert lint(project) == []  # and then nothing: the notebook's shape was right from the start


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("new", "Disk_Full"), "is no runbook name"),
        (("new", "service-down"), "exists already"),
        (("new", "disk-full", "--severity", "SEV9"), "unknown severity 'SEV9'"),
    ],
)
def test_a_name_taken_or_malformed_or_an_unknown_level_is_a_usage_error(
    project: Path, args: tuple[str, ...], complaint: str
) -> None:
    done = drillbook(project, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert complaint in done.stderr
    assert not (project / "docs/runbooks/disk-full.md").exists()
