"""The reference service's usage log (its `usage_logs` table): how each skill fares, by error
type and by skill, which skill is slow, and which skills are used most.

Every query needs the environment's `reference-tables` capability; the window is the
environment's rate window, so that the log and the counters speak of the same seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, LiteralString

from checks._errors import ProbeError
from checks._policy import parse_duration
from checks._result import CheckResult, Status, ladder, not_applicable, unobserved
from checks.by_hand import Manual, by_hand, inline, nothing_to_run, percent
from checks.postgres import aggregate
from checks.reference_service.flags import SHARED_CAUSE_CHANCE, chance_of_failures
from checks.targets import REFERENCE_TABLES, Targets

__all__ = [
    "check_errors_by_type",
    "check_failing_skill",
    "check_slow_skill",
    "most_used_skills",
    "outcomes_by_skill",
    "outcomes_by_type",
    "slow_skills",
    "slow_skills_sql",
    "tables_by_hand",
    "usage_window",
]


def lacking_tables(targets: Targets | str, name: str) -> CheckResult | None:
    """The "not applicable here" verdict of check `name` where the environment has no reference
    tables; None where it has them (or the caller named a database by DSN)."""
    missing = targets.lacks(REFERENCE_TABLES) if isinstance(targets, Targets) else None
    return None if missing is None else not_applicable(name, missing, requires=[REFERENCE_TABLES])


def tables_by_hand(targets: Targets) -> list[Manual] | None:
    """The by-hand equivalent of a check of the reference tables where the environment has none
    (a note saying so); None where it has them."""
    missing = targets.lacks(REFERENCE_TABLES)
    return None if missing is None else nothing_to_run(f"not applicable in {targets.environment}: {missing}")


def usage_window(targets: Targets) -> timedelta:
    """How far back the usage log is read: the environment's rate window (15 s in the sandbox)."""
    return parse_duration(targets.query.rate_window)


# --------------------------------------------------------------------------- the usage log


_BY_TYPE: LiteralString = """
    SELECT CASE WHEN success THEN 'ok' ELSE coalesce(error_type, 'unknown') END AS outcome,
           count(*) AS calls
      FROM usage_logs
     WHERE created_at > now() - %(since)s
     GROUP BY 1
"""
_BY_SKILL: LiteralString = """
    SELECT skill, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS errors,
           mode() WITHIN GROUP (ORDER BY error_type) FILTER (WHERE NOT success) AS error_type
      FROM usage_logs
     WHERE created_at > now() - %(since)s
     GROUP BY skill ORDER BY errors DESC, skill
"""


def outcomes_by_type(target: Targets | str, *, since: timedelta) -> dict[str, int]:
    """Calls in the usage log since `since` by outcome: "ok" or the error type."""
    rows = aggregate(target, _BY_TYPE, since=since)
    return {str(row["outcome"]): int(row["calls"]) for row in rows}


def outcomes_by_skill(target: Targets | str, *, since: timedelta) -> list[dict[str, Any]]:
    """Per skill in the usage log since `since`: calls, failures and their most common type."""
    rows = aggregate(target, _BY_SKILL, since=since)
    return [
        {
            "skill": r["skill"],
            "calls": int(r["calls"]),
            "errors": int(r["errors"]),
            "error_type": r["error_type"],
        }
        for r in rows
    ]


def _usage_unreadable(name: str, exc: ProbeError) -> CheckResult:
    return unobserved(
        name,
        f"could not read the usage log: {exc}",
        configure="The database is unreachable: see the database runbooks; Prometheus still has the rates.",
        evidence={"error": str(exc), "database": exc.target},
    )


def _errors_by_type_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    since = args["since"] or usage_window(targets)
    types = args["types"]
    counted = f"calls that failed with {' or '.join(types)}" if types else "calls that failed"
    note = (
        f"calls in the usage log by outcome over the last {since.total_seconds():g} s: the share of "
        f"{counted} is WARN from {percent(args['warn'])}, CRIT from {percent(args['crit'])}"
    )
    return [Manual("sql", inline(_BY_TYPE, {"since": since}), note)]


@by_hand(_errors_by_type_by_hand)
def check_errors_by_type(
    targets: Targets,
    *,
    since: timedelta | None = None,
    warn: float = 0.05,
    crit: float = 0.10,
    types: Sequence[str] | None = None,
    name: str = "errors-by-type",
) -> CheckResult:
    """Share of calls in the usage log that failed (with one of `types`, when given), by error type."""
    if lacking := lacking_tables(targets, name):
        return lacking
    since = since or usage_window(targets)
    try:
        counts = outcomes_by_type(targets, since=since)
    except ProbeError as exc:
        return _usage_unreadable(name, exc)
    total = sum(counts.values())
    failures = {k: v for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k != "ok"}
    evidence: dict[str, Any] = {"calls": total, "failures": failures, "since_s": since.total_seconds()}
    if total == 0:
        return unobserved(
            name,
            f"no calls in the usage log in the last {since.total_seconds():g} s: nothing to judge",
            evidence=evidence,
        )
    counted = sum(v for k, v in failures.items() if types is None or k in types)
    share = counted / total
    dominant = next(iter(failures), None)
    evidence |= {"share": round(share, 4), "dominant": dominant, "warn": warn, "crit": crit}
    status = ladder(share, warn=warn, crit=crit)
    scope = f" with {', '.join(types)}" if types else ""
    summary = f"{counted} of {total} calls failed{scope}"
    if dominant:
        summary += f"; most often {dominant} ({failures[dominant]})"
    return CheckResult(name, status, summary, evidence, remedy=_REMEDIES.get(dominant or "", ""))


_REMEDIES = {
    "internal_error": "A fault inside the service on every skill: restart it, roll back its last change.",
    "invalid_request": "The provider rejects our requests: a skill's configuration changed (rollout).",
    "upstream_timeout": "The provider is slower than our timeout: raise the upstream timeout.",
    "upstream_error": "The provider fails: see the upstream-outage runbook.",
    "circuit_open": "The circuit is open: see the upstream-outage runbook.",
    "rate_limited": "The provider rate-limits us: see the upstream-outage runbook.",
}


def _failing_skill_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    since = args["since"] or usage_window(targets)
    note = (
        f"calls and failures per skill over the last {since.total_seconds():g} s: one skill failing "
        f"{percent(args['crit'])} of {args['min_calls']} calls or more while the others answer is CRIT; "
        "every skill failing alike is a shared cause"
    )
    return [Manual("sql", inline(_BY_SKILL, {"since": since}), note)]


@by_hand(_failing_skill_by_hand)
def check_failing_skill(
    targets: Targets,
    *,
    since: timedelta | None = None,
    crit: float = 0.20,
    min_calls: int = 3,
    default_skill: str = "",
) -> CheckResult:
    """Is one skill to blame? CRIT when the skills failing from `crit` are a minority that carries
    most of the failures; OK when none fails or when every skill fails alike (a shared cause).

    `evidence["skill"]` names the worst skill (`default_skill` when there is none), so that a
    mitigation can name it without logic in the notebook.
    """
    if lacking := lacking_tables(targets, "failing-skill"):
        return replace(lacking, evidence={**lacking.evidence, "skill": default_skill})
    since = since or usage_window(targets)
    try:
        rows = outcomes_by_skill(targets, since=since)
    except ProbeError as exc:
        result = _usage_unreadable("failing-skill", exc)
        return replace(result, evidence={**result.evidence, "skill": default_skill})
    active = [r for r in rows if r["calls"] >= min_calls]
    failing = [r for r in active if r["errors"] / r["calls"] >= crit]
    all_errors = sum(r["errors"] for r in rows)
    evidence: dict[str, Any] = {
        "skills": {r["skill"]: f"{r['errors']}/{r['calls']} failed" for r in rows},
        "since_s": since.total_seconds(),
        "skill": failing[0]["skill"] if failing else default_skill,
    }
    if not failing:
        return CheckResult("failing-skill", Status.OK, f"no skill fails {crit:.0%} of its calls", evidence)
    carried = sum(r["errors"] for r in failing) / all_errors if all_errors else 0.0
    names = ", ".join(r["skill"] for r in failing)
    # With a few calls per skill, a failure that hits every call alike still leaves some skills
    # above `crit` and others below by chance: how likely are the failing skills' errors if every
    # call failed at the rate of all of them together?
    pooled = all_errors / max(1, sum(r["calls"] for r in rows))
    chance = chance_of_failures(sum(r["errors"] for r in failing), sum(r["calls"] for r in failing), pooled)
    evidence["chance_if_shared"] = round(chance, 4)
    if len(failing) * 2 > len(active) or carried < 0.8 or chance >= SHARED_CAUSE_CHANCE:
        return CheckResult(
            "failing-skill",
            Status.OK,
            f"{len(failing)} of {len(active)} skills fail alike ({names}): a shared cause, not one skill",
            evidence,
        )
    worst = failing[0]
    return CheckResult(
        "failing-skill",
        Status.CRIT,
        f"{names} fails ({worst['errors']} of {worst['calls']} calls, mostly {worst['error_type']}) "
        "while the other skills answer",
        evidence,
        remedy=f"Disable {worst['skill']} (disable_skill); callers get the plain path.",
    )


def _slow_skill_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if lacking := tables_by_hand(targets):
        return lacking
    since = args["since"] or usage_window(targets)
    note = (
        f"duration per skill over the last {since.total_seconds():g} s, the slowest first: an average "
        f"from {args['crit_ms']:g} ms and twice the others' median is CRIT"
    )
    return [Manual("sql", inline(*slow_skills_sql(since)), note)]


@by_hand(_slow_skill_by_hand)
def check_slow_skill(
    targets: Targets,
    *,
    since: timedelta | None = None,
    crit_ms: float = 5000.0,
    min_calls: int = 3,
    default_skill: str = "",
) -> CheckResult:
    """Is one skill the slow part? CRIT when the slowest skill's average reaches `crit_ms` and is at
    least twice the others' median; OK when none is slow or all are slow alike (a shared cause).
    `evidence["skill"]` names the slowest skill (`default_skill` when there is none)."""
    if lacking := lacking_tables(targets, "slow-skill"):
        return replace(lacking, evidence={**lacking.evidence, "skill": default_skill})
    since = since or usage_window(targets)
    try:
        rows = slow_skills(targets, since=since)
    except ProbeError as exc:
        result = _usage_unreadable("slow-skill", exc)
        return replace(result, evidence={**result.evidence, "skill": default_skill})
    active = [r for r in rows if int(r["calls"]) >= min_calls]
    evidence: dict[str, Any] = {
        "skills": {r["skill"]: {"avg_ms": float(r["avg_ms"]), "p95_ms": float(r["p95_ms"])} for r in rows},
        "since_s": since.total_seconds(),
        "skill": active[0]["skill"] if active else default_skill,
    }
    if not active or float(active[0]["avg_ms"]) < crit_ms:
        return CheckResult("slow-skill", Status.OK, f"no skill averages {crit_ms:g} ms or more", evidence)
    slowest = active[0]
    others = sorted(float(r["avg_ms"]) for r in active[1:])
    median = others[len(others) // 2] if others else 0.0
    if others and float(slowest["avg_ms"]) < 2 * median:
        return CheckResult(
            "slow-skill", Status.OK,
            f"every skill is slow alike (slowest {slowest['skill']} {float(slowest['avg_ms']):.0f} ms, "
            f"median of the others {median:.0f} ms): a shared cause, not one skill",
            evidence,
        )  # fmt: skip
    return CheckResult(
        "slow-skill",
        Status.CRIT,
        f"{slowest['skill']} averages {float(slowest['avg_ms']):.0f} ms, the others {median:.0f} ms",
        evidence,
        remedy=f"Lower the max tokens of {slowest['skill']} (set_max_tokens); review its prompt.",
    )


def slow_skills_sql(since: timedelta, min_avg_ms: float = 0.0) -> tuple[LiteralString, dict[str, Any]]:
    """The statement of `slow_skills`, and its parameters."""
    sql: LiteralString = """
        SELECT skill, count(*) AS calls, round(avg(duration_ms)) AS avg_ms,
               round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::numeric) AS p95_ms,
               max(duration_ms) AS max_ms
          FROM usage_logs
         WHERE created_at > now() - %(since)s
         GROUP BY skill HAVING avg(duration_ms) >= %(min_avg_ms)s
         ORDER BY avg_ms DESC
    """
    return sql, {"since": since, "min_avg_ms": min_avg_ms}


def slow_skills(
    target: Targets | str, *, since: timedelta = timedelta(hours=1), min_avg_ms: float | None = None
) -> list[dict[str, Any]]:
    """Per skill: average, 95th percentile and maximum duration, slowest first (every skill, or
    those that average `min_avg_ms` or more)."""
    sql, params = slow_skills_sql(since) if min_avg_ms is None else slow_skills_sql(since, min_avg_ms)
    return aggregate(target, sql, **params)


def most_used_skills(
    targets: Targets, *, limit: int = 5, since: timedelta = timedelta(hours=1), default: tuple[str, ...] = ()
) -> list[str]:
    """The `limit` skills with the most calls in the usage log; `default` when it cannot be read."""
    try:
        rows = aggregate(
            targets,
            """
            SELECT skill, count(*) AS calls FROM usage_logs
             WHERE created_at > now() - %(since)s
             GROUP BY skill ORDER BY calls DESC, skill LIMIT %(limit)s
            """,
            since=since,
            limit=limit,
        )
    except ProbeError:
        return list(default)
    return [str(row["skill"]) for row in rows] or list(default)
