"""Feature flags and skills: the rollout flag, how each skill fares, and a staged rollout.

The rollout flag sends a share of one skill's requests to a candidate skill.
`check_rollout` asks Prometheus whether the candidate fails while the flag sends
it traffic; `check_failing_skill` and `check_errors_by_type` read the usage log
(PostgreSQL) over the environment's rate window; `staged_rollout` is the action
that raises the flag step by step with a health gate between steps.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx

from checks import prometheus
from checks._admin import admin_call, admin_state
from checks._errors import ActionFailed, CheckError, ConfigError, ProbeError
from checks._policy import parse_duration
from checks._result import CheckResult, Status
from checks._wait import wait_until_ok
from checks.actions import Action, Effect, Plan
from checks.targets import Targets

__all__ = [
    "StagedRollout",
    "check_environment",
    "check_errors_by_type",
    "check_failing_skill",
    "check_rollout",
    "check_rollout_target",
    "check_slow_skill",
    "deploy_gates",
    "outcomes_by_skill",
    "outcomes_by_type",
    "rollout_percentage",
    "staged_rollout",
    "usage_window",
]

HealthCheck = Callable[[Targets], CheckResult]


def usage_window(targets: Targets) -> timedelta:
    """How far back the usage log is read: the environment's rate window (15 s in the sandbox)."""
    return parse_duration(targets.query.rate_window)


# --------------------------------------------------------------------------- the rollout flag


def rollout_percentage(targets: Targets, *, client: httpx.Client | None = None) -> float | None:
    """The rollout flag as the service last reported it to Prometheus (within the last hour, so that
    a service that stopped answering scrapes still shows its last value); None when unknown."""
    job = targets.job("api")
    promql = f'max(last_over_time(skill_rollout_percentage{{job="{job}"}}[1h]))'
    return prometheus.scalar(targets, promql, client=client)


def check_rollout(
    targets: Targets,
    skill: str = "summarise-v2",
    *,
    warn: float = 0.05,
    crit: float = 0.20,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Does the candidate `skill` fail while the flag sends it traffic? CRIT from `crit`, unless its
    failures are what the other skills' error ratio would give anyway: then the cause is shared.

    "What the others would give" is a binomial test: with the other skills failing a
    share p of their calls, how likely are at least this many failures in this many
    candidate calls? Above 1 %, the candidate is not blamed. A flag at 10 % sends the
    candidate a handful of calls per window, and 3 failures out of 3 while everything
    fails half the time is chance, not a bad release; 3 out of 3 while nothing else
    fails is not.
    """
    job, w = targets.job("api"), window or targets.query.rate_window
    candidate = f'job="{job}", skill="{skill}"'
    try:
        percentage = rollout_percentage(targets, client=client)
        calls = prometheus.scalar(
            targets, f"sum(increase(skill_requests_total{{{candidate}}}[{w}]))", client=client
        )
        failed = prometheus.scalar(
            targets,
            f'sum(increase(skill_requests_total{{{candidate}, outcome="error"}}[{w}]))',
            client=client,
        )
        others = prometheus.scalar(
            targets,
            f'sum(rate(skill_requests_total{{job="{job}", skill!="{skill}", outcome="error"}}[{w}]))'
            f' / sum(rate(skill_requests_total{{job="{job}", skill!="{skill}"}}[{w}]))',
            client=client,
        )
    except ProbeError as exc:
        return prometheus._cannot_ask(
            "rollout", exc, remedy="Read the flag from the admin API (GET /admin/state) instead."
        )
    evidence: dict[str, Any] = {"skill": skill, "rollout_percentage": percentage, "window": w}
    if percentage is None:
        return CheckResult(
            "rollout", Status.UNKNOWN, "Prometheus has no skill_rollout_percentage: the flag is unknown",
            evidence, remedy="Read the flag from the admin API (GET /admin/state).",
        )  # fmt: skip
    if not calls or percentage == 0:
        return CheckResult(
            "rollout", Status.OK, f"flag at {percentage:g} %, no {skill} calls in the last {w}", evidence
        )
    ratio = min(1.0, (failed or 0.0) / calls)
    evidence |= {"error_ratio": round(ratio, 4), "calls": round(calls, 1), "warn": warn, "crit": crit}
    if others is not None:
        chance = _chance_of_failures(round(failed or 0.0), max(1, round(calls)), others)
        evidence |= {"other_skills_error_ratio": round(others, 4), "chance_if_shared": round(chance, 4)}
        if chance >= SHARED_CAUSE_CHANCE:
            return CheckResult(
                "rollout", Status.OK,
                f"{skill} fails {ratio:.0%} of its {calls:.0f} calls, the other skills {others:.0%}: "
                "a shared cause, not the rollout",
                evidence,
            )  # fmt: skip
    status = Status.CRIT if ratio >= crit else Status.WARN if ratio >= warn else Status.OK
    return CheckResult(
        "rollout",
        status,
        f"{skill} fails {ratio:.0%} of its calls with the flag at {percentage:g} %",
        evidence,
        remedy=f"Roll the flag back to 0 % (set_rollout_percentage) and find what changed in {skill}.",
    )


SHARED_CAUSE_CHANCE = 0.01


def _chance_of_failures(failed: int, calls: int, share: float) -> float:
    """P(at least `failed` failures in `calls` calls), each failing with probability `share`."""
    failed = min(failed, calls)
    share = min(max(share, 0.0), 1.0)
    return sum(math.comb(calls, k) * share**k * (1 - share) ** (calls - k) for k in range(failed, calls + 1))


def check_rollout_target(
    targets: Targets, target: float, *, after_rollout: bool = True, client: httpx.Client | None = None
) -> CheckResult:
    """Is the flag at `target` % or above? Below it: WARN when a rollout should have taken it
    there, or when one waits to be resumed (`after_rollout`, the default: the evidence a staged
    rollout acts on); OK otherwise, since a flag between stages is normal by design and
    nothing for a responder to act on."""
    try:
        percentage = rollout_percentage(targets, client=client)
    except ProbeError as exc:
        return CheckResult(
            "rollout-target", Status.UNKNOWN, f"could not ask Prometheus: {exc}", {"error": str(exc)}
        )
    evidence = {"rollout_percentage": percentage, "target": target}
    if percentage is None:
        return CheckResult("rollout-target", Status.UNKNOWN, "the flag is unknown to Prometheus", evidence)
    if percentage >= target:
        return CheckResult(
            "rollout-target", Status.OK, f"flag at {percentage:g} %, target {target:g} %", evidence
        )
    if not after_rollout:
        return CheckResult(
            "rollout-target", Status.OK,
            f"flag at {percentage:g} %, below its target {target:g} %: between stages, as no rollout ran",
            evidence,
        )  # fmt: skip
    return CheckResult(
        "rollout-target", Status.WARN, f"flag at {percentage:g} %, below its target {target:g} %", evidence,
        remedy="Resume the rollout in stages once the cause is fixed.",
    )  # fmt: skip


# --------------------------------------------------------------------------- the usage log


def outcomes_by_type(target: Targets | str, *, since: timedelta) -> dict[str, int]:
    """Calls in the usage log since `since` by outcome: "ok" or the error type."""
    from checks import postgres  # psycopg loads only where the usage log is read

    rows = postgres.aggregate(
        target,
        """
        SELECT CASE WHEN success THEN 'ok' ELSE coalesce(error_type, 'unknown') END AS outcome,
               count(*) AS calls
          FROM usage_logs
         WHERE created_at > now() - %(since)s
         GROUP BY 1
        """,
        since=since,
    )
    return {str(row["outcome"]): int(row["calls"]) for row in rows}


def outcomes_by_skill(target: Targets | str, *, since: timedelta) -> list[dict[str, Any]]:
    """Per skill in the usage log since `since`: calls, failures and their most common type."""
    from checks import postgres  # psycopg loads only where the usage log is read

    rows = postgres.aggregate(
        target,
        """
        SELECT skill, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS errors,
               mode() WITHIN GROUP (ORDER BY error_type) FILTER (WHERE NOT success) AS error_type
          FROM usage_logs
         WHERE created_at > now() - %(since)s
         GROUP BY skill ORDER BY errors DESC, skill
        """,
        since=since,
    )
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
    return CheckResult(
        name,
        Status.UNKNOWN,
        f"could not read the usage log: {exc}",
        {"error": str(exc), "database": exc.target},
        remedy="The database is unreachable: see the database runbooks; Prometheus still has the rates.",
    )


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
    since = since or usage_window(targets)
    try:
        counts = outcomes_by_type(targets, since=since)
    except ProbeError as exc:
        return _usage_unreadable(name, exc)
    total = sum(counts.values())
    failures = {k: v for k, v in sorted(counts.items(), key=lambda kv: -kv[1]) if k != "ok"}
    evidence: dict[str, Any] = {"calls": total, "failures": failures, "since_s": since.total_seconds()}
    if total == 0:
        return CheckResult(name, Status.OK, "no calls in the usage log in the window", evidence)
    counted = sum(v for k, v in failures.items() if types is None or k in types)
    share = counted / total
    dominant = next(iter(failures), None)
    evidence |= {"share": round(share, 4), "dominant": dominant, "warn": warn, "crit": crit}
    status = Status.CRIT if share >= crit else Status.WARN if share >= warn else Status.OK
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
    chance = _chance_of_failures(sum(r["errors"] for r in failing), sum(r["calls"] for r in failing), pooled)
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


# --------------------------------------------------------------------------- the staged rollout


@dataclass(frozen=True, slots=True)
class StagedRollout(Action):
    """Raise the rollout flag step by step. After each step every health gate must become OK within
    `settle_s` and stay OK for `hold_s`; a gate that fails sets the flag back to the previous step
    and stops there (the detail says where and why)."""

    targets: Targets
    steps: tuple[int, ...]
    gates: tuple[HealthCheck, ...]
    settle_s: float = 30.0
    hold_s: float = 0.0
    start: int = 0
    interval_s: float = 1.0
    name: str = "staged rollout"

    def plan(self) -> Plan:
        gates = ", ".join(_gate_name(g) for g in self.gates) or "no gate"
        changes = tuple(
            f"rollout → {step} %, then {gates} OK within {self.settle_s:g} s and for {self.hold_s:g} s"
            for step in self.steps
        )
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=f"{self.targets.endpoint('api')}/admin/rollout",
            changes=(
                f"first, every gate must be OK (else nothing changes): {gates}",
                *changes,
                "a gate that fails: back to the previous step, then stop",
            ),
            command=("PUT", "/admin/rollout", " → ".join(f"{s} %" for s in self.steps)),
        )

    def apply(self) -> Effect:
        lines: list[str] = []
        previous = self.start
        before = self._flag()
        failed = self._gate()  # the gates hold before the first step too: never start on a failing one
        if failed is not None:
            return Effect("held", f"not started: {failed}", before=before, after=before)
        for step in self.steps:
            self._set(step)
            failed = self._gate()
            if failed is not None:
                self._set(previous)
                lines.append(f"{step} %: {failed}; back to {previous} %, stopped")
                break
            lines.append(f"{step} %: every gate OK")
            previous = step
        after, detail = self._flag(), "\n".join(lines)
        if before is None or after is None:  # the flag cannot be read back: the steps set are the change
            return Effect("changed", detail, before, after)
        if failed is not None and after == before:  # stopped at the first step, and set back
            return Effect("held", detail, before, after)
        return Effect.observed(before, after, detail)

    def _flag(self) -> Any:
        """The rollout percentage as the service reports it now; None when it cannot say."""
        try:
            return admin_state(self.targets)["rollout_percentage"]
        except (CheckError, KeyError, TypeError):
            return None

    def _gate(self) -> CheckResult | None:
        """The first gate that is not OK within `settle_s`, or that fails during `hold_s`."""
        for gate in self.gates:
            result = wait_until_ok(gate, self.targets, timeout_s=self.settle_s, interval_s=self.interval_s)
            if not result.ok:
                return result
        deadline = time.monotonic() + self.hold_s
        while time.monotonic() < deadline:
            time.sleep(min(self.interval_s, max(0.0, deadline - time.monotonic())))  # polling the hold
            for gate in self.gates:
                result = gate(self.targets)
                if not result.ok:
                    return result
        return None

    def _set(self, percentage: int) -> None:
        try:
            admin_call(self.targets, "PUT", "/admin/rollout", {"percentage": percentage})
        except ProbeError as exc:
            raise ActionFailed(f"rollout → {percentage} % not set: {exc}") from exc


def staged_rollout(
    targets: Targets,
    steps: Sequence[int] = (1, 5, 25),
    *,
    gates: Sequence[HealthCheck] = (),
    settle_s: float = 30.0,
    hold_s: float = 0.0,
    start: int = 0,
) -> StagedRollout:
    """The action that raises the flag through `steps` (percentages), checking `gates` between."""
    if any(not 0 <= s <= 100 for s in steps) or list(steps) != sorted(steps):
        raise ConfigError(f"rollout steps must rise from 0 to 100, not {list(steps)}")
    return StagedRollout(targets, tuple(steps), tuple(gates), settle_s, hold_s, start)


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
    since = since or usage_window(targets)
    try:
        from checks import postgres  # psycopg loads only where the usage log is read

        rows = postgres.slow_skills(targets, since=since)
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


def _gate_name(gate: HealthCheck) -> str:
    inner = getattr(gate, "func", gate)
    name = str(getattr(inner, "__name__", "check"))
    keywords = getattr(gate, "keywords", {})
    return name + (f"({', '.join(f'{k}={v}' for k, v in keywords.items())})" if keywords else "")


def deploy_gates(*, p95_s: float = 5.0, error_ratio: float = 0.02) -> tuple[HealthCheck, ...]:
    """The performance gates of a rollout, as health checks of one argument (the targets):
    p95 of every request under `p95_s`, and the 5xx share of /api requests under `error_ratio`."""
    return (
        functools.partial(prometheus.check_latency_quantile, warn_s=p95_s, crit_s=p95_s),
        functools.partial(prometheus.check_route_error_ratio, warn=error_ratio, crit=error_ratio),
    )


def check_environment(
    targets: Targets,
    *,
    endpoints: Sequence[str] = ("api", "prometheus", "postgres", "redis"),
    secrets: Sequence[str] = ("admin_token",),
) -> CheckResult:
    """Does the environment name every endpoint and secret a deployment needs? CRIT naming the
    missing ones (values are never shown)."""
    missing = [f"endpoint {name}" for name in endpoints if not getattr(targets, name, None)]
    missing += [f"secret {name}" for name in secrets if targets.optional_secret(name) is None]
    evidence = {"environment": targets.environment, "endpoints": list(endpoints), "secrets": list(secrets)}
    if missing:
        return CheckResult(
            "environment", Status.CRIT, f"{targets.environment} lacks {', '.join(missing)}",
            {**evidence, "missing": missing},
            remedy="Declare it in policy/environments.yml, or export the secret's variable.",
        )  # fmt: skip
    return CheckResult(
        "environment", Status.OK, f"{targets.environment}: every endpoint and secret is set", evidence
    )
