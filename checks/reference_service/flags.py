"""The reference service's rollout flag: what it is set to, whether its candidate skill fails, and
the staged rollout that raises it step by step with health gates between steps.

The flag lives behind the service's admin API (`reference-admin`); what the candidate
does is read from the service's own skill counters in Prometheus (signals `rollout_percentage`
and `skill_requests`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from checks import prometheus
from checks._errors import ActionFailed, CheckError, ConfigError, ProbeError
from checks._result import CheckResult, Status, ladder
from checks._wait import wait_until_ok
from checks.actions import Action, Effect, Plan
from checks.by_hand import Manual, by_hand, percent
from checks.deploy import HealthCheck, gate_name
from checks.reference_service.admin import REFERENCE_ADMIN, admin_call, admin_state
from checks.targets import Targets

__all__ = [
    "SHARED_CAUSE_CHANCE",
    "StagedRollout",
    "chance_of_failures",
    "check_rollout",
    "check_rollout_target",
    "rollout_percentage",
    "rollout_percentage_query",
    "rollout_queries",
    "staged_rollout",
]

# --------------------------------------------------------------------------- the rollout flag


def rollout_percentage_query(targets: Targets) -> str:
    """The PromQL of `rollout_percentage`."""
    return f"max(last_over_time({prometheus.series(targets, 'rollout_percentage', None)}[1h]))"


def rollout_percentage(targets: Targets, *, client: httpx.Client | None = None) -> float | None:
    """The rollout flag as the service last reported it to Prometheus (within the last hour, so that
    a service that stopped answering scrapes still shows its last value); None when unknown."""
    return prometheus.scalar(targets, rollout_percentage_query(targets), client=client)


def rollout_queries(targets: Targets, skill: str, *, window: str | None = None) -> tuple[str, str, str]:
    """The PromQL of `check_rollout` beside the flag: the candidate `skill`'s calls and its failed
    calls over the window, and the other skills' error ratio."""
    w = window or targets.query.rate_window
    signal = targets.signals["skill_requests"]
    by, outcome, error = signal.label("skill"), signal.label("outcome"), signal.value("error")
    candidate = prometheus.series(targets, "skill_requests", None, f'{by}="{skill}"')
    failing = prometheus.series(targets, "skill_requests", None, f'{by}="{skill}"', f'{outcome}="{error}"')
    others = prometheus.series(targets, "skill_requests", None, f'{by}!="{skill}"')
    others_failing = prometheus.series(
        targets, "skill_requests", None, f'{by}!="{skill}"', f'{outcome}="{error}"'
    )
    return (
        f"sum(increase({candidate}[{w}]))",
        f"sum(increase({failing}[{w}]))",
        f"sum(rate({others_failing}[{w}])) / sum(rate({others}[{w}]))",
    )


def _rollout_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    skill = args["skill"]
    calls, failed, others = rollout_queries(targets, skill, window=args["window"])
    w = args["window"] or targets.query.rate_window
    flag = f"the rollout flag, in % of requests sent to the candidate {skill}: 0 sends it nothing"
    share = (
        f"the share of {skill}'s calls that failed over the last {w}: WARN from {percent(args['warn'])}, "
        f"CRIT from {percent(args['crit'])}"
    )
    shared = "the other skills' error ratio: when it is as high, the cause is shared, not the rollout"
    return [
        Manual("promql", rollout_percentage_query(targets), flag),
        Manual("promql", f"{failed} / {calls}", share),
        Manual("promql", others, shared),
    ]


@by_hand(_rollout_by_hand)
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
    if lacking := prometheus._lacking(targets, "rollout", "rollout_percentage", "skill_requests"):
        return lacking
    w = window or targets.query.rate_window
    calls_query, failed_query, others_query = rollout_queries(targets, skill, window=window)
    try:
        percentage = rollout_percentage(targets, client=client)
        calls = prometheus.scalar(targets, calls_query, client=client)
        failed = prometheus.scalar(targets, failed_query, client=client)
        others_ratio = prometheus.scalar(targets, others_query, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(
            "rollout", exc, remedy="Read the flag from the admin API (GET /admin/state) instead."
        )
    evidence: dict[str, Any] = {"skill": skill, "rollout_percentage": percentage, "window": w}
    if percentage is None:
        return CheckResult(
            "rollout", Status.UNKNOWN, "Prometheus has no rollout_percentage signal: the flag is unknown",
            evidence, remedy="Read the flag from the admin API (GET /admin/state).",
        )  # fmt: skip
    if not calls or percentage == 0:
        return CheckResult(
            "rollout", Status.OK, f"flag at {percentage:g} %, no {skill} calls in the last {w}", evidence
        )
    ratio = min(1.0, (failed or 0.0) / calls)
    evidence |= {"error_ratio": round(ratio, 4), "calls": round(calls, 1), "warn": warn, "crit": crit}
    if others_ratio is not None:
        chance = chance_of_failures(round(failed or 0.0), max(1, round(calls)), others_ratio)
        evidence |= {"other_skills_error_ratio": round(others_ratio, 4), "chance_if_shared": round(chance, 4)}
        if chance >= SHARED_CAUSE_CHANCE:
            return CheckResult(
                "rollout", Status.OK,
                f"{skill} fails {ratio:.0%} of its {calls:.0f} calls, the other skills {others_ratio:.0%}: "
                "a shared cause, not the rollout",
                evidence,
            )  # fmt: skip
    status = ladder(ratio, warn=warn, crit=crit)
    return CheckResult(
        "rollout",
        status,
        f"{skill} fails {ratio:.0%} of its calls with the flag at {percentage:g} %",
        evidence,
        remedy=f"Roll the flag back to 0 % (set_rollout_percentage) and find what changed in {skill}.",
    )


SHARED_CAUSE_CHANCE = 0.01


def chance_of_failures(failed: int, calls: int, share: float) -> float:
    """P(at least `failed` failures in `calls` calls), each failing with probability `share`."""
    failed = min(failed, calls)
    share = min(max(share, 0.0), 1.0)
    return sum(math.comb(calls, k) * share**k * (1 - share) ** (calls - k) for k in range(failed, calls + 1))


def _rollout_target_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    target = f"{args['target']:g} %" if "target" in args else "its target"
    note = f"the rollout flag in %: below {target} after a rollout is WARN (resume it in stages)"
    return [Manual("promql", rollout_percentage_query(targets), note)]


@by_hand(_rollout_target_by_hand)
def check_rollout_target(
    targets: Targets, target: float, *, after_rollout: bool = True, client: httpx.Client | None = None
) -> CheckResult:
    """Is the flag at `target` % or above? Below it: WARN when a rollout should have taken it
    there, or when one waits to be resumed (`after_rollout`, the default: the evidence a staged
    rollout acts on); OK otherwise, since a flag between stages is normal by design and
    nothing for a responder to act on."""
    if lacking := prometheus._lacking(targets, "rollout-target", "rollout_percentage"):
        return lacking
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

    def lacking(self) -> str | None:
        return self.targets.lacks(REFERENCE_ADMIN)

    def plan(self) -> Plan:
        gates = ", ".join(gate_name(g) for g in self.gates) or "no gate"
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
