"""The GitHub workflows: valid against GitHub's schema (offline), pinned, least-privilege,
and running only Makefile targets, so that CI runs what `make` runs on a laptop."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
GITHUB = REPO / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
_PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+(\.\d+){0,2}$")
_RULE = re.compile(r"^([A-Za-z0-9_./-]+(?:[ \t]+[A-Za-z0-9_./-]+)*)[ \t]*::?(?!=)")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _validate(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with a schema it bundles: no network."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def make_targets(makefile: Path) -> set[str]:
    """The targets the Makefile defines rules for (not variables, not recipe lines)."""
    targets: set[str] = set()
    for line in makefile.read_text(encoding="utf-8").splitlines():
        match = _RULE.match(line)
        if match and not line.startswith("\t"):
            targets.update(match[1].split())
    return targets


def make_invocations(workflow: dict[str, Any]) -> list[tuple[str, str]]:
    """(job, run line) for every line of every `run:` step."""
    found = []
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            for line in str(step.get("run", "")).splitlines():
                if line.strip():
                    found.append((name, line.strip()))
    return found


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "pages.yml", "nightly.yml"}
    assert (GITHUB / "dependabot.yml").is_file()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_the_workflow_is_valid_for_github(path: Path) -> None:
    result = _validate("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dependabot_configuration_is_valid() -> None:
    result = _validate("vendor.dependabot", GITHUB / "dependabot.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_dependabot_updates_python_actions_and_the_sandbox_images() -> None:
    updates = _load(GITHUB / "dependabot.yml")["updates"]
    assert {u["package-ecosystem"] for u in updates} >= {"pip", "github-actions", "docker"}
    # every sandbox image is built from the base image that sandbox/Dockerfile names
    docker = [u["directory"] for u in updates if u["package-ecosystem"] == "docker"]
    assert docker == ["/sandbox"]
    assert (REPO / "sandbox" / "Dockerfile").is_file()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_command_is_a_makefile_target(path: Path) -> None:
    targets = make_targets(REPO / "Makefile")
    wrong, missing = [], []
    for job, line in make_invocations(_load(path)):
        words = line.split()
        if words[0] != "make":
            wrong.append(f"{job}: {line}")
            continue
        missing += [
            f"{job}: make {w}"
            for w in words[1:]
            if "=" not in w and not w.startswith("-") and w not in targets
        ]
    assert wrong == [], "run steps call Makefile targets only, so that CI runs what a laptop runs"
    assert missing == [], f"the Makefile lacks these targets (it has: {', '.join(sorted(targets))})"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_by_commit_with_its_version(path: Path) -> None:
    uses = [
        line.split("uses:", 1)[1].strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip().removeprefix("- ").startswith("uses:")
    ]
    assert uses, "no action used?"
    assert [u for u in uses if not _PINNED.match(u)] == []


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_read_only_unless_a_job_widens_them(path: Path) -> None:
    workflow = _load(path)
    assert workflow["permissions"] == {"contents": "read"}
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_runs_are_bounded_and_superseded_runs_cancelled(path: Path) -> None:
    workflow = _load(path)
    assert "group" in workflow["concurrency"]
    # a deployment is never cancelled half way; every other workflow cancels superseded runs
    assert workflow["concurrency"]["cancel-in-progress"] is (path.name != "pages.yml")
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), f"job {name} has no timeout-minutes"


def test_pages_deploys_only_from_main_and_only_after_the_drills() -> None:
    pages = _load(GITHUB / "workflows" / "pages.yml")
    assert pages[True]["push"]["branches"] == ["main"]  # YAML 1.1 reads the key `on` as true
    build = [line for _, line in make_invocations(pages)]
    assert build.index("make drills") < build.index("make site")
    assert build.index("make runbooks") < build.index("make site")
    assert pages["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}


def test_the_nightly_drill_is_scheduled() -> None:
    nightly = _load(GITHUB / "workflows" / "nightly.yml")
    assert nightly[True]["schedule"]
    assert "make drills" in [line for _, line in make_invocations(nightly)]


def test_make_targets_reads_rules_not_variables(tmp_path: Path) -> None:
    makefile = tmp_path / "Makefile"
    makefile.write_text("VENV ?= .venv\nPY := x\n.PHONY: a\na b: c\n\techo d: e\n$(STAMP): f\nunit:\n")
    assert make_targets(makefile) == {".PHONY", "a", "b", "unit"}
