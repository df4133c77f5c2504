"""`[tool.drillbook]`: the one place a project says where its facts are, read by every tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from checks import ConfigError
from drillbook.project import DEFAULT_ALERT_RULES, Project
from drillbook.site import SiteError, SitePaths
from drillbook.site import _alert_rule_files as site_alert_rules

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = """# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% tags=["parameters"]
env = "sandbox"
"""


def test_this_repository_is_a_configured_project_whose_rule_files_exist() -> None:
    project = Project.at(REPO)
    assert project.configured
    assert project.existing_alert_rules() == tuple(REPO / name for name in DEFAULT_ALERT_RULES)


def test_a_rule_file_that_does_not_exist_fails_the_site_as_it_fails_lint(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.drillbook]\nalert_rules = ["rules/missing.yml"]\n')
    with pytest.raises(
        ConfigError, match=r"rules/missing\.yml does not exist \(\[tool\.drillbook\] alert_rules"
    ):
        Project.at(tmp_path).existing_alert_rules()
    with pytest.raises(SiteError, match=r"missing\.yml does not exist"):
        site_alert_rules(SitePaths(root=tmp_path, docs=tmp_path / "docs"))


def test_without_the_table_a_project_is_not_configured_and_gets_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "theirs"\n')
    project = Project.at(tmp_path)
    assert not project.configured
    assert project.alert_rules == tuple(tmp_path / name for name in DEFAULT_ALERT_RULES)


def test_the_pytest_plugin_collects_nothing_in_a_project_that_is_not_drillbooks(tmp_path: Path) -> None:
    """Installed in another project, it once collected notebooks/*.py and failed with
    "fixture 'runbook_targets' not found"."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "theirs"\n')
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "x.py").write_text(NOTEBOOK)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "notebooks/x.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 5, done.stdout + done.stderr  # no tests collected, and no error
    assert "runbook_targets" not in done.stdout
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "theirs"\n\n[tool.drillbook]\n')
    configured = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", "notebooks/x.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "1 test collected" in configured.stdout, configured.stdout


def test_the_command_says_its_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("drillbook 0.")


def test_the_site_is_a_plugin_of_the_package_and_needs_no_file_copied_into_a_project() -> None:
    from importlib.metadata import entry_points

    from drillbook.site.plugin import DrillbookPlugin

    [plugin] = [e for e in entry_points(group="mkdocs.plugins") if e.name == "drillbook"]
    assert plugin.load() is DrillbookPlugin
    config = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert "\nhooks:" not in config  # no hook file of the project's own
    assert "modules: [drillbook.site]" in config  # the macros, from the package
    assert "  - drillbook\n" in config
    assert not (REPO / "docs" / "overrides" / "macros.py").exists()
