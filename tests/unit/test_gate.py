"""The gate: dry runs by default, apply when asked, a named confirmation for production."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from checks import Gate, Status, restart_service
from checks.reference_service import admin
from checks.testing import result, targets

Marker = tuple[tuple[str, ...], Path]


@pytest.fixture
def restart_marker(tmp_path: Path) -> Marker:
    """A platform restart command that records which service it was asked to restart."""
    marker = tmp_path / "restarted"
    argv = (sys.executable, "-c", f"import pathlib; pathlib.Path({str(marker)!r}).write_text('{{service}}')")
    return argv, marker


def test_without_apply_the_gate_only_plans(restart_marker: Marker) -> None:
    argv, marker = restart_marker
    t = targets(platform={"restart": argv}, services={"api": "reference-api"})
    outcome = Gate.for_targets(t).run(restart_service(t, "api"))
    assert outcome.state == "planned"
    assert outcome.plan.target == "reference-api"
    assert "reference-api" in " ".join(outcome.plan.command)
    assert not marker.exists()


def test_with_apply_the_platform_command_runs_with_the_platform_name(restart_marker: Marker) -> None:
    argv, marker = restart_marker
    t = targets(platform={"restart": argv}, services={"api": "reference-api"})
    outcome = Gate.for_targets(t, apply=True).run(restart_service(t, "api"))
    assert outcome.changed
    assert outcome.state == "changed"
    assert marker.read_text() == "reference-api"


def test_production_without_confirmation_is_refused_and_changes_nothing(restart_marker: Marker) -> None:
    argv, marker = restart_marker
    t = targets("production", gate="confirm", platform={"restart": argv})
    refused = Gate.for_targets(t, apply=True, confirm="staging").run(restart_service(t, "api"))
    assert refused.state == "refused"
    assert "confirm='production'" in refused.reason
    assert not refused.changed
    assert not marker.exists()
    outcome = Gate.for_targets(t, apply=True, confirm="production").run(restart_service(t, "api"))
    assert outcome.changed
    assert marker.exists()


def test_healthy_evidence_needs_no_change(restart_marker: Marker) -> None:
    argv, marker = restart_marker
    t = targets(platform={"restart": argv})
    outcome = Gate.for_targets(t, apply=True).run(restart_service(t, "api"), evidence=[result("health")])
    assert outcome.state == "unchanged"
    assert not marker.exists()


@pytest.mark.parametrize("status", [Status.WARN, Status.CRIT])
def test_an_observed_problem_applies_the_action(restart_marker: Marker, status: Status) -> None:
    argv, marker = restart_marker
    t = targets(platform={"restart": argv})
    evidence = [result("health"), result("errors", status)]
    assert Gate.for_targets(t, apply=True).run(restart_service(t, "api"), evidence=evidence).changed
    assert marker.exists()


@pytest.mark.parametrize("blind", [Status.UNKNOWN, Status.NOT_APPLICABLE])
def test_evidence_that_could_not_observe_skips_the_action_and_names_what_was_missing(
    restart_marker: Marker, blind: Status
) -> None:
    argv, marker = restart_marker
    t = targets(platform={"restart": argv})
    evidence = [result("health"), result("errors", blind)]
    outcome = Gate.for_targets(t, apply=True).run(restart_service(t, "api"), evidence=evidence)
    assert outcome.state == "skipped"
    assert outcome.reason.startswith("skipped: could not observe errors")
    assert not marker.exists()


def test_unknown_evidence_beside_an_observed_problem_still_applies(restart_marker: Marker) -> None:
    argv, marker = restart_marker
    t = targets(platform={"restart": argv})
    evidence = [result("errors", Status.UNKNOWN), result("health", Status.CRIT)]
    assert Gate.for_targets(t, apply=True).run(restart_service(t, "api"), evidence=evidence).changed
    assert marker.exists()


def test_a_switch_of_the_reference_admin_api_is_not_applicable_where_there_is_none() -> None:
    t = targets(platform={"restart": ("true",)}, capabilities=frozenset())
    outcome = Gate.for_targets(t, apply=True).run(
        admin.set_rollout_percentage(t, 0), evidence=[result("rollout", Status.CRIT)]
    )
    assert outcome.state == "skipped"
    assert "not applicable here: needs 'reference-admin'" in outcome.reason


def test_a_failing_platform_command_is_a_failed_outcome_with_its_output() -> None:
    t = targets(platform={"restart": (sys.executable, "-c", "import sys; sys.exit('no such deployment')")})
    outcome = Gate.for_targets(t, apply=True).run(restart_service(t, "api"))
    assert outcome.state == "failed"
    assert "no such deployment" in outcome.reason
    assert not outcome.changed


def test_an_environment_without_a_restart_command_skips_the_restart_and_says_what_to_declare() -> None:
    t = targets(platform={})
    outcome = Gate.for_targets(t, apply=True).run(restart_service(t, "api"))
    assert outcome.state == "skipped"
    assert "platform.restart" in outcome.reason
