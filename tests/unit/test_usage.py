"""Cost verdicts from Prometheus and the max-tokens action's plan, with fakes."""

from __future__ import annotations

import httpx
import pytest

from checks import ConfigError, Status, usage
from checks.testing import prometheus_transport, targets


def _ratios(*pairs: tuple[str, float]) -> httpx.Client:
    return httpx.Client(transport=prometheus_transport(lambda _: [({"skill": s}, v) for s, v in pairs]))


def test_a_skill_above_the_threshold_is_crit_and_named_worst_first() -> None:
    result = usage.check_cost_per_call(
        targets(), threshold=0.5, client=_ratios(("summarise", 2.6), ("classify", 1.1), ("extract", 1.7))
    )
    assert result.status is Status.CRIT
    assert result.evidence["offenders"] == ["summarise", "extract"]


def test_within_the_threshold_is_ok() -> None:
    assert usage.check_cost_per_call(targets(), client=_ratios(("summarise", 1.2))).status is Status.OK


def test_no_calls_or_no_prometheus_is_unknown() -> None:
    assert usage.check_cost_per_call(targets(), client=_ratios()).status is Status.UNKNOWN
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert usage.check_cost_per_call(targets(), client=broken).status is Status.UNKNOWN


def test_caps_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        usage.lower_max_tokens(targets(), {"summarise": 0})


def test_the_plan_names_every_skill_even_when_the_service_cannot_be_asked() -> None:
    plan = usage.lower_max_tokens(targets(), {"summarise": 550}).plan()
    assert plan.changes == ("max tokens of skill summarise: ? → 550",)
