"""Classification and escalation decisions, from canned results."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from checks import Status, classify, escalation_at, load_severity, summarize
from checks.testing import result

POLICY = load_severity(Path(__file__).resolve().parents[2] / "policy" / "severity.yml")


def test_when_the_service_is_unreachable_then_the_policy_suggests_sev1() -> None:
    verdict = classify([result("health", Status.CRIT, availability=0.0)], policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == "SEV1"
    assert verdict.reasons == ("availability 0.0% < 50%",)


@pytest.mark.parametrize(
    ("measurements", "level"),
    [
        ({"error_ratio": 0.12}, "SEV2"),
        ({"error_ratio": 0.07}, "SEV3"),
        ({"error_ratio": 0.02}, "SEV4"),
        ({"p95_latency_seconds": 8.0}, "SEV2"),
        ({"p95_latency_seconds": 3.0}, "SEV3"),
        ({"availability": 0.93}, "SEV3"),
    ],
)
def test_quantitative_triggers_pick_the_most_severe_level_met(
    measurements: dict[str, float], level: str
) -> None:
    verdict = classify(measurements=measurements, policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == level


def test_the_worst_reading_of_several_checks_counts() -> None:
    results = [result("a", Status.OK, availability=1.0), result("b", Status.CRIT, availability=0.4)]
    verdict = classify(results, policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == "SEV1"
    assert verdict.measurements["availability"] == 0.4


def test_a_failing_check_without_measurements_is_not_lost() -> None:
    verdict = classify([result("cache", Status.WARN)], policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == "SEV4"
    assert "cache WARN" in verdict.reasons[0]


def test_everything_ok_means_no_incident() -> None:
    verdict = classify([result("health"), result("up", availability=1.0)], policy=POLICY)
    assert verdict.level is None


def test_summary_renders_a_triage_table_and_the_level() -> None:
    summary = summarize([result("health", Status.CRIT, availability=0.0), result("up")], policy=POLICY)
    markdown = summary.to_markdown()
    assert "| health | CRIT |" in markdown
    assert "Suggested severity: SEV1 (P0), Critical." in markdown
    assert summary.status is Status.CRIT


def test_escalation_accumulates_steps_and_says_when_the_next_one_is_due() -> None:
    at_start = escalation_at("SEV1", timedelta(0), severity=POLICY)
    later = escalation_at("P0", timedelta(minutes=20), severity=POLICY)
    assert [c.key for c in at_start.page] == ["primary-oncall", "incident-commander"]
    assert at_start.next_step_in == timedelta(minutes=15)
    assert [c.key for c in later.page] == ["primary-oncall", "incident-commander", "secondary-oncall"]
    assert "engineering-manager" in [c.key for c in later.notify]
    assert later.next_step_in == timedelta(minutes=10)


def test_a_step_that_does_not_apply_here_suggests_no_level() -> None:
    classification = classify([result("health"), result("rollout", Status.NOT_APPLICABLE)])
    assert classification.level is None
