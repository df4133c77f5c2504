"""Classification and escalation decisions, from canned results."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from checks import CheckResult, Status, classify, escalation_at, load_severity, summarize
from checks.testing import result

POLICY = load_severity(Path(__file__).resolve().parents[2] / "policy" / "severity.yml")


def test_when_the_service_is_unreachable_then_the_policy_suggests_sev1() -> None:
    verdict = classify([result("health", Status.CRIT, availability=0.0)], policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == "SEV1"
    assert verdict.reasons == ("availability_below: availability 0 % < 50 %",)


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


# --------------------------------------------------------------------------- every kind of incident


def _fact(name: str, status: Status, *conditions: str, **measurements: float) -> CheckResult:
    return CheckResult(
        name, status, f"{name} is {status.value}", measurements=measurements, conditions=set(conditions)
    )


def test_a_confirmed_credential_leak_is_sev1_and_says_which_trigger_decided() -> None:
    results = [
        result("health"),
        _fact("key-fanout", Status.CRIT, "credential_leak"),
        result("new-addresses", Status.WARN),
    ]
    verdict = classify(results, policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == "SEV1"
    assert verdict.reasons == ("credential_leak: reported by key-fanout",)


def test_an_upstream_outage_covered_by_the_fallback_is_sev2_before_and_after_the_circuit_opens() -> None:
    """Calls still going to the failing provider, then the circuit open: one incident, one level."""
    calls_fail = [
        result("health", Status.CRIT),  # "down", naming the upstream: no availability reading
        _fact("fallback-share", Status.CRIT, "dependency_down_with_fallback"),
        result("circuit-breaker"),
        result("upstream-errors", Status.CRIT),
    ]
    circuit_open = [
        result("health", Status.WARN),
        _fact("fallback-share", Status.CRIT, "dependency_down_with_fallback"),
        _fact("circuit-breaker", Status.CRIT, "dependency_down_with_fallback"),
        result("upstream-errors", Status.WARN),
    ]
    levels = {classify(results, policy=POLICY).level for results in (calls_fail, circuit_open)}
    assert [level.id for level in levels if level] == ["SEV2"]
    assert None not in levels


def test_the_order_of_the_results_never_changes_the_level() -> None:
    results = [
        _fact("a", Status.CRIT, "dependency_down_with_fallback"),
        result("b", Status.CRIT, error_ratio=0.07),
        result("c", Status.WARN, p95_latency_seconds=1.5),
    ]
    verdicts = {
        str(classify(order, policy=POLICY)) for order in (results, results[::-1], results[1:] + results[:1])
    }
    assert len(verdicts) == 1


@pytest.mark.parametrize(
    ("measurements", "level"),
    [
        ({"saturation": 0.95}, "SEV2"),  # the pool is exhausted
        ({"saturation": 0.85}, "SEV2"),
        ({"saturation": 0.75}, "SEV3"),
        ({"saturation": 0.65}, None),
        ({"cache_hit_ratio": 0.1}, "SEV3"),  # a cold cache
        ({"cache_hit_ratio": 0.6}, None),
        ({"cost_vs_baseline": 12.0}, "SEV2"),
        ({"cost_vs_baseline": 2.0}, "SEV3"),
        ({"cost_vs_baseline": 1.2}, None),
    ],
)
def test_saturation_cache_and_cost_have_triggers_of_their_own(
    measurements: dict[str, float], level: str | None
) -> None:
    verdict = classify(measurements=measurements, policy=POLICY)
    assert (verdict.level.id if verdict.level else None) == level


def test_results_that_meet_no_trigger_get_the_policys_level_for_their_worst_status() -> None:
    two_crit = classify([result("a", Status.CRIT), result("b", Status.CRIT)], policy=POLICY)
    one_warn = classify([result("a", Status.WARN)], policy=POLICY)
    assert two_crit.level is not None
    assert two_crit.level.id == POLICY.otherwise["CRIT"] == "SEV3"
    assert one_warn.level is not None
    assert one_warn.level.id == POLICY.otherwise["WARN"] == "SEV4"
    assert "a CRIT, b CRIT" in two_crit.reasons[0]


def test_what_could_not_be_seen_is_never_called_ok() -> None:
    verdict = classify([result("health"), result("error-ratio", Status.UNKNOWN)], policy=POLICY)
    assert verdict.level is None
    assert "error-ratio could not look" in verdict.reasons[0]
    assert "every check is OK" not in verdict.reasons[0]


def test_a_condition_given_by_hand_counts_like_one_a_check_reported() -> None:
    verdict = classify(conditions=["data_exposure"], policy=POLICY)
    assert verdict.level is not None
    assert verdict.level.id == "SEV1"
    assert verdict.reasons == ("data_exposure: given",)
