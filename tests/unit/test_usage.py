"""Cost verdicts from Prometheus and the max-tokens action's plan, with fakes."""

from __future__ import annotations

import httpx
import pytest

from checks import ConfigError, Status
from checks.reference_service import costs
from checks.testing import prometheus_transport, targets


def _ratios(*pairs: tuple[str, float]) -> httpx.Client:
    return httpx.Client(transport=prometheus_transport(lambda _: [({"skill": s}, v) for s, v in pairs]))


def test_a_skill_above_the_threshold_is_crit_and_named_worst_first() -> None:
    result = costs.check_cost_per_call(
        targets(), max_ratio=1.5, client=_ratios(("summarise", 2.6), ("classify", 1.1), ("extract", 1.7))
    )
    assert result.status is Status.CRIT
    assert result.evidence["offenders"] == ["summarise", "extract"]


def test_within_the_threshold_is_ok() -> None:
    assert costs.check_cost_per_call(targets(), client=_ratios(("summarise", 1.2))).status is Status.OK


def test_no_calls_or_no_prometheus_is_unknown() -> None:
    assert costs.check_cost_per_call(targets(), client=_ratios()).status is Status.UNKNOWN
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert costs.check_cost_per_call(targets(), client=broken).status is Status.UNKNOWN


def test_caps_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        costs.lower_max_tokens(targets(), {"summarise": 0})


def test_the_plan_names_every_skill_even_when_the_service_cannot_be_asked() -> None:
    plan = costs.lower_max_tokens(targets(), {"summarise": 550}).plan()
    assert plan.changes == ("max tokens of skill summarise: ? → 550",)


def _usage_rows(monkeypatch: pytest.MonkeyPatch, *rows: tuple[str, int, float | None, int]) -> None:
    """The usage log as cost_per_call answers it: (skill, recent calls, cost per call, longest output);
    every skill's baseline is 0.01 USD and 100 output tokens per call."""
    table = [
        {
            "skill": skill,
            "calls": calls,
            "cost_per_call": cost,
            "baseline_cost_per_call": 0.01,
            "tokens_per_call": None if cost is None else round(cost * 20000),
            "baseline_tokens_per_call": 200,
            "baseline_output_per_call": 100,
            "max_output": longest if calls else None,
            "cost_per_hour": 0.0 if cost is None else cost * calls * 60,
        }
        for skill, calls, cost, longest in rows
    ]
    monkeypatch.setattr(costs, "cost_per_call", lambda targets, since: table)


def test_one_skill_over_its_baseline_gets_a_cap_and_no_other(monkeypatch: pytest.MonkeyPatch) -> None:
    _usage_rows(monkeypatch, ("summarise", 5, 0.03, 900), ("classify", 5, 0.01, 110), ("rare", 0, None, 0))
    result = costs.check_usage_cost(targets())
    assert result.status is Status.CRIT
    assert result.evidence["offenders"] == ["summarise"]
    assert result.evidence["suggested_max_tokens"] == {"summarise": 200}


def test_two_skills_over_at_once_cap_every_skill_with_a_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    # the rare skill has not been called since answers grew; it will be, and it will grow too
    _usage_rows(monkeypatch, ("summarise", 5, 0.03, 900), ("review", 2, 0.04, 950), ("rare", 0, None, 0))
    result = costs.check_usage_cost(targets())
    assert result.status is Status.CRIT
    assert set(result.evidence["suggested_max_tokens"]) == {"summarise", "review", "rare"}
    assert result.evidence["skills"]["rare"]["ratio"] is None


def test_a_usage_log_without_recent_calls_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    _usage_rows(monkeypatch, ("rare", 0, None, 0))
    assert costs.check_usage_cost(targets()).status is Status.UNKNOWN
