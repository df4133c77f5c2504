"""How the flag and skill verdicts decide, and how the staged rollout stops at a failing gate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from checks import CheckResult, ConfigError, ProbeError, Status, deploy
from checks.reference_service import flags, usage_log
from checks.targets import Targets
from checks.testing import prometheus_transport, result, targets


def prometheus(
    rollout: float | None, ratio: float | None, *, calls: float = 20.0, others: float = 0.0
) -> httpx.Client:
    """Prometheus as check_rollout asks it: the flag, the candidate's calls and failures, the others'
    error ratio. `ratio` None: the candidate had no calls."""

    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        if "skill_rollout_percentage" in query:
            value = rollout
        elif "skill!=" in query:
            value = others
        elif ratio is None:
            value = None
        else:
            value = ratio * calls if 'outcome="error"' in query else calls
        return [] if value is None else [({}, value)]

    return httpx.Client(transport=prometheus_transport(answer))


def test_candidate_failing_behind_the_flag_is_crit() -> None:
    outcome = flags.check_rollout(targets(), "candidate", client=prometheus(100, 0.9))
    assert outcome.status is Status.CRIT
    assert outcome.evidence["rollout_percentage"] == 100


def test_flag_at_zero_is_ok_whatever_the_candidate_did() -> None:
    assert flags.check_rollout(targets(), client=prometheus(0, 0.9)).status is Status.OK


def test_flag_without_candidate_traffic_is_ok() -> None:
    assert flags.check_rollout(targets(), client=prometheus(10, None)).status is Status.OK


def test_unknown_flag_is_unknown() -> None:
    assert flags.check_rollout(targets(), client=prometheus(None, None)).status is Status.UNKNOWN


def test_rollout_below_its_target_is_a_warning() -> None:
    assert flags.check_rollout_target(targets(), 25, client=prometheus(5, None)).status is Status.WARN
    assert flags.check_rollout_target(targets(), 25, client=prometheus(25, None)).status is Status.OK


def test_a_flag_between_stages_is_normal_when_no_rollout_was_to_move_it() -> None:
    between = flags.check_rollout_target(targets(), 25, after_rollout=False, client=prometheus(10, None))
    assert between.status is Status.OK
    assert "between stages" in between.summary
    reached = flags.check_rollout_target(targets(), 25, after_rollout=False, client=prometheus(25, None))
    assert reached.status is Status.OK


def skills(monkeypatch: pytest.MonkeyPatch, rows: list[dict[str, Any]]) -> None:
    monkeypatch.setattr(usage_log, "outcomes_by_skill", lambda target, since: rows)


def row(skill: str, calls: int, errors: int, error_type: str | None = None) -> dict[str, Any]:
    return {"skill": skill, "calls": calls, "errors": errors, "error_type": error_type}


def test_one_skill_failing_while_others_answer_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    skills(monkeypatch, [row("v2", 10, 10, "invalid_request"), row("a", 10, 0), row("b", 10, 0)])
    outcome = usage_log.check_failing_skill(targets(), since=timedelta(seconds=15))
    assert outcome.status is Status.CRIT
    assert outcome.evidence["skill"] == "v2"


def test_every_skill_failing_alike_is_a_shared_cause_not_one_skill(monkeypatch: pytest.MonkeyPatch) -> None:
    skills(monkeypatch, [row("a", 10, 5), row("b", 10, 6), row("c", 4, 0)])
    outcome = usage_log.check_failing_skill(targets(), since=timedelta(seconds=15), default_skill="v2")
    assert outcome.status is Status.OK
    assert "shared cause" in outcome.summary
    assert outcome.evidence["skill"] == "a"


def test_skills_apart_by_chance_under_a_shared_failure_are_not_blamed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # half of all calls fail alike; with 7 to 17 calls a skill, two land above 20 % and two below
    rows = [row("classify", 17, 11, "internal_error"), row("extract", 9, 6), row("a", 7, 1), row("b", 7, 1)]
    skills(monkeypatch, rows)
    outcome = usage_log.check_failing_skill(targets(), since=timedelta(seconds=15))
    assert outcome.status is Status.OK, outcome.summary
    assert outcome.evidence["chance_if_shared"] >= flags.SHARED_CAUSE_CHANCE


def test_unreadable_usage_log_is_unknown_and_still_names_a_skill(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(target: Targets, since: timedelta) -> list[dict[str, Any]]:
        raise ProbeError("cannot connect to PostgreSQL: refused", target="db:5432/app")

    monkeypatch.setattr(usage_log, "outcomes_by_skill", down)
    outcome = usage_log.check_failing_skill(targets(), since=timedelta(seconds=15), default_skill="v2")
    assert outcome.status is Status.UNKNOWN
    assert outcome.evidence["skill"] == "v2"


def test_errors_by_type_judges_the_share_and_names_the_dominant_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_log, "outcomes_by_type", lambda t, since: {"ok": 6, "internal_error": 4})
    outcome = usage_log.check_errors_by_type(targets(), since=timedelta(seconds=15))
    assert outcome.status is Status.CRIT
    assert outcome.evidence["dominant"] == "internal_error"
    only = usage_log.check_errors_by_type(targets(), since=timedelta(seconds=15), types=["rate_limited"])
    assert only.status is Status.OK


def test_staged_rollout_plans_every_step() -> None:
    plan = flags.staged_rollout(targets(), (1, 5, 25), gates=[lambda t: result("health")]).plan()
    assert len(plan.changes) == 5
    assert "first, every gate must be OK" in plan.changes[0]
    assert "1 %" in plan.changes[1]


def _flag_at(monkeypatch: pytest.MonkeyPatch, start: int) -> list[int]:
    """The admin API of a service whose flag is at `start`: the percentages set, in order."""
    calls: list[int] = []
    monkeypatch.setattr(flags, "admin_call", lambda t, m, p, body: calls.append(body["percentage"]))
    monkeypatch.setattr(flags, "admin_state", lambda t: {"rollout_percentage": calls[-1] if calls else start})
    return calls


def test_staged_rollout_stops_and_steps_back_at_a_failing_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flag_at(monkeypatch, 0)

    def gate(t: Targets) -> CheckResult:
        return result("health", Status.CRIT if (calls[-1] if calls else 0) >= 5 else Status.OK)

    effect = flags.staged_rollout(targets(), (1, 5, 25), gates=[gate], settle_s=0).apply()
    assert calls == [1, 5, 1]
    assert "stopped" in effect.detail
    assert (effect.state, effect.before, effect.after) == ("changed", 0, 1)


def test_staged_rollout_set_back_to_where_it_was_is_held_not_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flag_at(monkeypatch, 0)
    effect = flags.staged_rollout(
        targets(), (1, 5), gates=[lambda t: result("health", Status.CRIT if calls else Status.OK)], settle_s=0
    ).apply()
    assert calls == [1, 0]
    assert (effect.state, effect.before, effect.after) == ("held", 0, 0)


def test_staged_rollout_that_reaches_its_last_step_changed_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flag_at(monkeypatch, 10)
    effect = flags.staged_rollout(
        targets(), (1, 5, 25), gates=[lambda t: result("health")], settle_s=0
    ).apply()
    assert calls == [1, 5, 25]
    assert (effect.state, effect.before, effect.after) == ("changed", 10, 25)


def test_staged_rollout_refuses_falling_steps() -> None:
    with pytest.raises(ConfigError):
        flags.staged_rollout(targets(), (25, 5))


def test_candidate_failing_like_every_other_skill_is_not_blamed() -> None:
    outcome = flags.check_rollout(targets(), client=prometheus(100, 0.5, others=0.5))
    assert outcome.status is Status.OK
    assert "shared cause" in outcome.summary


def test_a_few_candidate_failures_while_everything_fails_are_chance_not_the_rollout() -> None:
    # 3 of 3 failing when the other skills fail 48 % of their calls: 11 % likely by chance alone
    outcome = flags.check_rollout(targets(), client=prometheus(10, 1.0, calls=3, others=0.48))
    assert outcome.status is Status.OK, outcome.summary
    assert outcome.evidence["chance_if_shared"] > 0.1


def test_the_same_few_failures_while_nothing_else_fails_are_the_rollout() -> None:
    outcome = flags.check_rollout(targets(), client=prometheus(10, 1.0, calls=3, others=0.01))
    assert outcome.status is Status.CRIT
    assert outcome.evidence["chance_if_shared"] < 0.01


def test_a_candidate_much_worse_than_failing_others_is_still_blamed() -> None:
    outcome = flags.check_rollout(targets(), client=prometheus(100, 0.9, calls=30, others=0.5))
    assert outcome.status is Status.CRIT


def slow(monkeypatch: pytest.MonkeyPatch, averages: dict[str, float]) -> None:
    rows = [{"skill": k, "calls": 5, "avg_ms": v, "p95_ms": v, "max_ms": v} for k, v in averages.items()]
    monkeypatch.setattr(
        usage_log, "slow_skills", lambda target, since: sorted(rows, key=lambda r: -r["avg_ms"])
    )


def test_one_skill_much_slower_than_the_others_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    slow(monkeypatch, {"big": 9000, "a": 300, "b": 400})
    outcome = usage_log.check_slow_skill(targets(), since=timedelta(seconds=15), crit_ms=2000)
    assert outcome.status is Status.CRIT
    assert outcome.evidence["skill"] == "big"


def test_every_skill_slow_alike_is_a_shared_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    slow(monkeypatch, {"a": 2600, "b": 2550, "c": 2500})
    outcome = usage_log.check_slow_skill(targets(), since=timedelta(seconds=15), crit_ms=2000)
    assert outcome.status is Status.OK
    assert "shared cause" in outcome.summary


def test_staged_rollout_never_starts_on_a_failing_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flag_at(monkeypatch, 10)
    effect = flags.staged_rollout(
        targets(), (1, 5), gates=[lambda t: result("redis", Status.CRIT)], settle_s=0
    ).apply()
    assert calls == []
    assert effect.detail.startswith("not started")
    assert (effect.state, effect.before, effect.after) == ("held", 10, 10)


def test_environment_lacking_an_endpoint_is_crit_and_names_it() -> None:
    outcome = deploy.check_environment(targets(), endpoints=("api", "postgres"), secrets=())
    assert outcome.status is Status.CRIT
    assert outcome.evidence["missing"] == ["endpoint postgres"]


def test_deploy_gates_carry_their_thresholds() -> None:
    latency, errors = deploy.deploy_gates(p95_s=5.0, error_ratio=0.02)
    client = httpx.Client(transport=prometheus_transport(lambda q: [({}, 6.0)]))
    assert latency(targets(), client=client).status is Status.CRIT
    assert errors(targets(), client=client).status is Status.CRIT  # 6/6 of requests failed
