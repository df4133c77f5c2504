"""Cost and token verdicts: what the upstream provider bills, against the historical baseline.

Two observers: the service's own counters through Prometheus (cost per call per
skill over the rate window, against `llm_cost_baseline_usd_per_call`, which the
service keeps at the historical average), and the usage log in PostgreSQL
(cost and tokens per call over a recent window against the rows older than
an hour). Per call, not per hour: a busier hour is not a cost incident, an
answer that got ten times longer is. The hourly rate is in the evidence.

`lower_max_tokens` is the mitigation: cap the tokens of the offending skills.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, LiteralString

from checks._errors import CheckError, ConfigError, ProbeError
from checks._policy import parse_duration
from checks._result import CheckResult, Status
from checks.actions import Action, Effect, Plan
from checks.by_hand import Manual, by_hand, inline
from checks.reference_service.admin import REFERENCE_ADMIN, admin_call, admin_state
from checks.reference_service.usage_log import lacking_tables, tables_by_hand
from checks.targets import Targets
from checks.thresholds import thresholds

__all__ = [
    "LowerMaxTokens",
    "check_cost_per_call",
    "check_expensive_skills",
    "check_usage_cost",
    "cost_per_call",
    "cost_per_call_query",
    "expensive_skills",
    "lower_max_tokens",
]


def _ratio_summary(offenders: Mapping[str, float]) -> str:
    return ", ".join(f"{skill} at {ratio:.1f} times" for skill, ratio in offenders.items())


def cost_per_call_query(targets: Targets, service: str | None = None, *, window: str | None = None) -> str:
    """The PromQL of `check_cost_per_call`: per skill, the cost of one call over the rate window
    against its baseline."""
    from checks import prometheus

    w = window or targets.query.rate_window
    skill = targets.signals["llm_cost"].label("skill")
    cost = prometheus.series(targets, "llm_cost", service)
    calls = prometheus.series(targets, "llm_calls", service)
    baseline = prometheus.series(targets, "llm_cost_baseline", service)
    return (
        f"sum by ({skill}) (rate({cost}[{w}])) / sum by ({skill}) (rate({calls}[{w}]))"
        f" / on ({skill}) max by ({skill}) ({baseline})"
    )


def _cost_per_call_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = (
        "per skill, what one call costs against its baseline (1: as usual; NaN: no call in the window): "
        "the step's limit is a ratio such as 1.5, and a skill above it is CRIT"
    )
    return [Manual("promql", cost_per_call_query(targets, args["service"], window=args["window"]), note)]


@by_hand(_cost_per_call_by_hand)
@thresholds(max_ratio="cost_vs_baseline")
def check_cost_per_call(
    targets: Targets,
    service: str | None = None,
    *,
    max_ratio: float = 1.5,
    window: str | None = None,
    client: Any = None,
) -> CheckResult:
    """Cost of one upstream call per skill over the rate window against its baseline (Prometheus).

    CRIT when any skill costs more than `max_ratio` times its baseline (the default is the
    policy's SEV3 trigger `cost_vs_baseline_above`); the evidence lists those skills, worst first.
    """
    from checks import prometheus

    if lacking := prometheus._lacking(targets, "cost-per-call", "llm_cost", "llm_calls", "llm_cost_baseline"):
        return lacking
    w = window or targets.query.rate_window
    skill = targets.signals["llm_cost"].label("skill")
    promql = cost_per_call_query(targets, service, window=window)
    try:
        samples = prometheus.query(targets, promql, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(
            "cost-per-call", exc, remedy="Prometheus itself may be down: read the usage log (the next step)."
        )
    ratios = {
        s.labels.get(skill, "?"): round(s.value, 2) for s in samples if s.value == s.value
    }  # NaN: no call in the window
    if not ratios:
        return CheckResult(
            "cost-per-call",
            Status.UNKNOWN,
            f"no upstream call in the last {w} (or no baseline yet): nothing to compare",
            {"query": promql},
        )
    limit = max_ratio
    offenders = dict(sorted(((k, v) for k, v in ratios.items() if v > limit), key=lambda kv: -kv[1]))
    evidence = {"ratio_to_baseline": ratios, "max_ratio": max_ratio, "window": w}
    worst = {"cost_vs_baseline": max(ratios.values())}
    if offenders:
        return CheckResult(
            "cost-per-call",
            Status.CRIT,
            f"one call costs more than {limit:g} times its baseline for {_ratio_summary(offenders)}",
            {**evidence, "offenders": list(offenders)},
            remedy="Cap max tokens of these skills; then find what made the answers longer.",
            measurements=worst,
        )
    return CheckResult(
        "cost-per-call",
        Status.OK,
        f"cost per call at most {worst['cost_vs_baseline']:.1f} times its baseline",
        evidence,
        measurements=worst,
    )


_COST_PER_CALL: LiteralString = """
        WITH calls AS (
            SELECT skill, cost_usd, tokens_input + tokens_output AS tokens, tokens_output,
                   created_at > now() - %(since)s AS recent
              FROM usage_logs
             WHERE success AND NOT cached AND tokens_output > 0
               AND (created_at > now() - %(since)s OR created_at < now() - interval '1 hour')
        )
        SELECT skill,
               count(*) FILTER (WHERE recent) AS calls,
               avg(cost_usd) FILTER (WHERE recent)::float AS cost_per_call,
               avg(cost_usd) FILTER (WHERE NOT recent)::float AS baseline_cost_per_call,
               round(avg(tokens) FILTER (WHERE recent)) AS tokens_per_call,
               round(avg(tokens) FILTER (WHERE NOT recent)) AS baseline_tokens_per_call,
               round(avg(tokens_output) FILTER (WHERE NOT recent)) AS baseline_output_per_call,
               max(tokens_output) FILTER (WHERE recent) AS max_output,
               (coalesce(sum(cost_usd) FILTER (WHERE recent), 0)
                  / (extract(epoch FROM %(since)s::interval) / 3600))::float AS cost_per_hour
          FROM calls
         GROUP BY skill
         ORDER BY avg(cost_usd) FILTER (WHERE recent)
                  / nullif(avg(cost_usd) FILTER (WHERE NOT recent), 0) DESC NULLS LAST
"""


def cost_per_call(targets: Targets | str, *, since: timedelta) -> list[dict[str, Any]]:
    """Per skill, from the usage log: upstream calls, cost and tokens per call over `since`,
    against the same for the rows older than an hour (the baseline), and cost per hour.

    A skill with a baseline but no call over `since` has a row too, with 0 calls."""
    from checks.postgres import aggregate

    return aggregate(targets, _COST_PER_CALL, since=since)


def _usage_cost_since(targets: Targets, since: timedelta | None) -> timedelta:
    """How far back `check_usage_cost` reads: `since`, else four rate windows."""
    return since or parse_duration(targets.query.rate_window) * 4


def _usage_cost_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    since = _usage_cost_since(targets, args["since"])
    note = (
        f"per skill, cost and tokens per call over the last {since.total_seconds():g} s against the rows "
        "older than an hour: cost_per_call over baseline_cost_per_call above the step's limit is CRIT"
    )
    return [Manual("sql", inline(_COST_PER_CALL, {"since": since}), note)]


@by_hand(_usage_cost_by_hand)
@thresholds(max_ratio="cost_vs_baseline")
def check_usage_cost(
    targets: Targets,
    *,
    max_ratio: float = 1.5,
    since: timedelta | None = None,
    headroom: float = 2.0,
    flagged: Sequence[str] = (),
) -> CheckResult:
    """Cost and tokens per call per skill from the usage log, against the seeded baseline.

    CRIT when a skill's cost per call is more than `max_ratio` times its
    baseline. The evidence names each offender with its tokens per call and a
    suggested max-tokens cap (`headroom` times its baseline output tokens),
    which `lower_max_tokens` takes. A cap is suggested for every skill whose
    longest recent answer exceeds that cap (answers grew, even if its average
    has not crossed the threshold yet) and for skills `flagged` by another
    observer (the Prometheus check). When two skills or more are over at once,
    the cause is shared (the provider, a prompt template), and the skills not
    called yet since it began will follow: a cap is suggested for every skill
    with a baseline. `since` defaults to four rate windows.
    """
    if lacking := lacking_tables(targets, "usage-cost"):
        return lacking
    since = _usage_cost_since(targets, since)
    try:
        rows = cost_per_call(targets, since=since)
    except ProbeError as exc:
        return CheckResult(
            "usage-cost",
            Status.CRIT,
            f"cannot read the usage log: {exc}",
            {"error": str(exc), "target": exc.target},
            remedy="The database is unreachable: see the database-down runbook.",
        )
    window = f"{since.total_seconds():g}s"
    if not any(row["calls"] for row in rows):
        return CheckResult("usage-cost", Status.UNKNOWN, f"no upstream call in the last {window}")
    limit = max_ratio
    table = {
        row["skill"]: {
            "calls": row["calls"],
            "ratio": round(row["cost_per_call"] / row["baseline_cost_per_call"], 2)
            if row["cost_per_call"] is not None and row["baseline_cost_per_call"]
            else None,
            "tokens_per_call": row["tokens_per_call"],
            "longest_output": row["max_output"],
            "baseline_tokens_per_call": row["baseline_tokens_per_call"],
            "cost_per_hour": round(row["cost_per_hour"], 4),
        }
        for row in rows
    }
    offenders = [skill for skill, t in table.items() if t["ratio"] is not None and t["ratio"] > limit]
    shared = len({*offenders, *flagged}) >= 2
    suggested = {}
    for row in rows:
        if not row["baseline_output_per_call"]:
            continue
        cap = max(64, round(float(row["baseline_output_per_call"]) * headroom))
        grew = (row["max_output"] or 0) > cap
        if shared or grew or row["skill"] in offenders or row["skill"] in flagged:
            suggested[row["skill"]] = cap
    evidence = {
        "window": window,
        "skills": table,
        "cost_per_hour": round(sum(t["cost_per_hour"] for t in table.values()), 4),
    }
    if suggested:
        evidence["suggested_max_tokens"] = suggested
    if offenders:
        worst = table[offenders[0]]
        return CheckResult(
            "usage-cost",
            Status.CRIT,
            f"{', '.join(offenders)} cost more than {limit:g} times their baseline per call "
            f"({offenders[0]}: {worst['tokens_per_call']} tokens per call, "
            f"baseline {worst['baseline_tokens_per_call']})",
            {**evidence, "offenders": offenders},
            remedy="Cap max tokens of the offenders (the mitigation), then find why answers grew.",
        )
    return CheckResult(
        "usage-cost", Status.OK, f"every skill within {limit:g} times its baseline cost per call", evidence
    )


@dataclass(frozen=True, slots=True)
class LowerMaxTokens(Action):
    """Cap max tokens of several skills; never raises a cap that is already lower."""

    targets: Targets
    caps: Mapping[str, int] = field(default_factory=dict)
    name: str = "lower max tokens"

    def _current(self) -> dict[str, Any]:
        try:
            skills: dict[str, Any] = admin_state(self.targets)["skills"]
        except (CheckError, KeyError, TypeError):
            return {}
        return {name: s.get("max_tokens") for name, s in skills.items()}

    def _changes(self, current: Mapping[str, Any]) -> dict[str, int]:
        return {
            skill: cap
            for skill, cap in self.caps.items()
            if not isinstance(current.get(skill), int) or current[skill] > cap
        }

    def lacking(self) -> str | None:
        return self.targets.lacks(REFERENCE_ADMIN)

    def plan(self) -> Plan:
        current = self._current()
        changes = tuple(
            f"max tokens of skill {skill}: {current.get(skill, '?')} → {cap}"
            + ("" if skill in self._changes(current) else " (already at or below: no change)")
            for skill, cap in self.caps.items()
        ) or ("nothing: no skill to cap",)
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=f"{self.targets.endpoint('api')}/admin/skills",
            changes=changes,
            command=tuple(
                f"PUT /admin/skills/{s} {json.dumps({'max_tokens': c})}" for s, c in self.caps.items()
            ),
        )

    def apply(self) -> Effect:
        current = self._current()
        wanted = self._changes(current)
        answers = []
        for skill, cap in wanted.items():
            answer = admin_call(self.targets, "PUT", f"/admin/skills/{skill}", {"max_tokens": cap})
            answers.append(f"{skill}: {json.dumps(answer, default=str)}")
        after = self._current()
        caps = list(self.caps)
        return Effect.observed(
            {skill: current.get(skill) for skill in caps},
            {skill: after.get(skill) for skill in caps},
            "\n".join(answers) or "every cap already at or below",
        )


def lower_max_tokens(targets: Targets, caps: Mapping[str, int]) -> LowerMaxTokens:
    """The action that caps max tokens per skill (`{"contract-review": 600}`)."""
    bad = {skill: cap for skill, cap in caps.items() if cap <= 0}
    if bad:
        raise ConfigError(f"max tokens must be positive: {bad}")
    return LowerMaxTokens(targets, dict(caps))


_EXPENSIVE: LiteralString = """
    SELECT skill, count(*) AS calls,
           round(avg(tokens_input + tokens_output)) AS tokens_per_call,
           round(sum(cost_usd)::numeric, 4) AS cost_usd
      FROM usage_logs
     WHERE created_at > now() - %(since)s
     GROUP BY skill ORDER BY cost_usd DESC
"""


def expensive_skills(target: Targets | str, *, since: timedelta = timedelta(hours=1)) -> list[dict[str, Any]]:
    """Per skill: calls, tokens per call and cost, most expensive first."""
    from checks.postgres import aggregate  # psycopg loads only where the usage log is read

    return aggregate(target, _EXPENSIVE, since=since)


def _expensive_skills_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    note = f"calls, tokens per call and cost per skill over {args['since']}, the most expensive first"
    return [Manual("sql", inline(_EXPENSIVE, {"since": args["since"]}), note)]


@by_hand(_expensive_skills_by_hand)
def check_expensive_skills(
    targets: Targets, *, since: timedelta = timedelta(hours=1), top: int = 5
) -> CheckResult:
    """The `top` most expensive skills over `since`, from the usage log: calls, tokens per call
    and cost. An observation for the responder (OK), not a verdict on its own; UNKNOWN when the
    log cannot be read."""
    if lacking := lacking_tables(targets, "expensive-skills"):
        return lacking
    try:
        rows = expensive_skills(targets, since=since)[:top]
    except ProbeError as exc:
        return CheckResult(
            "expensive-skills", Status.UNKNOWN, f"could not read the usage log: {exc}", {"error": str(exc)}
        )
    skills = {
        str(r["skill"]): {"calls": int(r["calls"]), "tokens_per_call": float(r["tokens_per_call"] or 0),
                          "cost_usd": float(r["cost_usd"] or 0)}
        for r in rows
    }  # fmt: skip
    listed = ", ".join(f"{name} ${row['cost_usd']:.2f}" for name, row in skills.items()) or "no call"
    return CheckResult(
        "expensive-skills", Status.OK, f"most expensive over {since}: {listed}", {"skills": skills}
    )
