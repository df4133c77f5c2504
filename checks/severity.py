"""Severity: turn what the checks saw into a level of the policy, and say who to page.

`classify` reads what results carry: the numbers in `measurements` (the policy's
`measures`: availability, error ratio, saturation, ...) and the facts in `conditions`
(credential leak, dependency down with or without fallback, ...). It takes the worst
reading of each measure and returns the most severe level with a trigger met, naming
the triggers that decided it. `escalation_at` reads the ladder of policy/escalation.yml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from checks._errors import ConfigError
from checks._policy import (
    Contact,
    EscalationPolicy,
    Level,
    SeverityPolicy,
    format_duration,
    load_escalation,
    load_severity,
)
from checks._result import SEVERITY_MIME, CheckResult, Status

__all__ = [
    "SEVERITY_MIME",
    "Classification",
    "Escalation",
    "Summary",
    "classify",
    "escalation_at",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class Classification:
    """The level the policy suggests (None: no incident) and why."""

    level: Level | None
    reasons: tuple[str, ...]
    measurements: Mapping[str, float] = field(default_factory=dict)
    # Why no level could be suggested at all (the severity policy is unreadable); "" otherwise.
    unclassified: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level.id if self.level else None,
            "name": self.level.name if self.level else None,
            "reasons": list(self.reasons),
            "measurements": dict(self.measurements),
            "unclassified": self.unclassified,
        }

    def to_markdown(self) -> str:
        if self.unclassified:
            head = f"**Suggested severity: unknown.** {self.unclassified}"
        elif self.level is None:
            head = "**Suggested severity: none.** No incident by the policy's triggers."
        else:
            lv = self.level
            head = (
                f"**Suggested severity: {lv.label}, {lv.name}.** {lv.definition} "
                f"Acknowledge within {format_duration(lv.acknowledge_within)}, "
                f"resolve within {format_duration(lv.resolve_within)}, "
                f"update every {format_duration(lv.update_every)}. {lv.paging}"
            )
        return "\n".join([head, "", *(f"- {reason}" for reason in self.reasons)])

    def __str__(self) -> str:
        level = self.level.label if self.level else "unknown" if self.unclassified else "none"
        return f"suggested severity: {level} ({'; '.join(self.reasons)})"

    def _repr_mimebundle_(self, **_: Any) -> dict[str, Any]:
        return {"text/plain": str(self), "text/markdown": self.to_markdown(), SEVERITY_MIME: self.to_dict()}


def classify(
    results: Iterable[CheckResult] = (),
    *,
    measurements: Mapping[str, float] | None = None,
    conditions: Iterable[str] = (),
    policy: SeverityPolicy | None = None,
) -> Classification:
    """Suggest a severity level from check results, extra measurements and extra conditions.

    The most severe level with a trigger met wins: a measure's worst reading past the level's
    threshold, or a condition the level names. When no trigger is met but some check is not
    OK, the policy's `otherwise` gives the level by the worst status; when everything is OK,
    no level. Every reason names the trigger or rule that decided it; the order of the
    results never matters.
    """
    policy = policy or load_severity()
    results = list(results)
    readings: dict[str, list[float]] = {}
    for result in results:
        for name, value in result.measurements.items():
            readings.setdefault(name, []).append(value)
    for name, value in (measurements or {}).items():
        readings.setdefault(name, []).append(float(value))
    worst = {
        name: policy.measures[name].worst(values)
        for name, values in readings.items()
        if name in policy.measures
    }
    facts = {
        condition: [r.name for r in results if condition in r.conditions] for condition in policy.conditions
    }
    for condition in conditions:
        facts.setdefault(condition, []).append("")  # given by a person, not reported by a check
    observed = {condition: names for condition, names in facts.items() if names}

    for level in policy.levels:
        reasons = _met(level, worst, observed, policy)
        if reasons:
            return Classification(level, tuple(reasons), worst)
    failing = [r for r in results if not r.ok and r.applies and r.status.value in policy.otherwise]
    if failing:
        status = Status.worst(r.status for r in failing)
        level = policy.level(policy.otherwise[status.value])
        names = ", ".join(f"{r.name} {r.status.value}" for r in failing)
        reason = (
            f"{names}; no trigger is met, so the policy's level for a {status.value} result: judge the impact"
        )
        return Classification(level, (reason,), worst)
    unseen = [r.name for r in results if r.status is Status.UNKNOWN]
    if unseen:
        reason = (
            f"no trigger is met, but {', '.join(unseen)} could not look: UNKNOWN is not OK, judge by hand"
        )
        return Classification(None, (reason,), worst)
    return Classification(None, ("every check is OK and no trigger is met",), worst)


def _met(
    level: Level, worst: Mapping[str, float], observed: Mapping[str, list[str]], policy: SeverityPolicy
) -> list[str]:
    """The triggers of `level` that the readings meet, each as a reason naming it."""
    reasons = []
    for name, threshold in level.triggers.thresholds.items():
        measure = policy.measures[name]
        if name in worst and measure.met(worst[name], threshold):
            sign = ">" if measure.worse == "above" else "<"
            reasons.append(
                f"{measure.key}: {name.replace('_', ' ')} {measure.format(worst[name])} {sign} "
                f"{measure.format(threshold)}"
            )
    for condition in sorted(level.triggers.conditions):
        if condition in observed:
            checks = [name for name in observed[condition] if name]
            reasons.append(f"{condition}: " + (f"reported by {', '.join(checks)}" if checks else "given"))
    return reasons


@dataclass(frozen=True, slots=True)
class Escalation:
    """Who should have been paged and told by `elapsed` into an incident of `level`."""

    level: Level
    elapsed: timedelta
    page: tuple[Contact, ...]
    notify: tuple[Contact, ...]
    next_step_in: timedelta | None

    def __str__(self) -> str:
        page = ", ".join(c.name for c in self.page) or "nobody"
        notify = ", ".join(c.name for c in self.notify) or "nobody"
        nxt = f"; next step in {format_duration(self.next_step_in)}" if self.next_step_in else ""
        return f"{self.level.id} at {format_duration(self.elapsed)}: page {page}; notify {notify}{nxt}"


def escalation_at(
    level: str | Level,
    elapsed: timedelta,
    *,
    severity: SeverityPolicy | None = None,
    escalation: EscalationPolicy | None = None,
) -> Escalation:
    """Everyone the ladder of `level` has reached by `elapsed` (steps accumulate)."""
    severity = severity or load_severity()
    lv = severity.level(level) if isinstance(level, str) else level
    escalation = escalation or load_escalation(severity.source.with_name("escalation.yml"), severity=severity)
    ladder = escalation.ladders.get(lv.id, ())
    reached = [step for step in ladder if step.after <= elapsed]
    later = [step.after - elapsed for step in ladder if step.after > elapsed]
    return Escalation(
        level=lv,
        elapsed=elapsed,
        page=_unique(c for step in reached for c in step.page),
        notify=_unique(c for step in reached for c in step.notify),
        next_step_in=min(later) if later else None,
    )


def _unique(contacts: Iterable[Contact]) -> tuple[Contact, ...]:
    return tuple(dict.fromkeys(contacts))


@dataclass(frozen=True, slots=True)
class Summary:
    """The triage table of a run and the severity the policy suggests for it."""

    results: tuple[CheckResult, ...]
    classification: Classification

    @property
    def status(self) -> Status:
        return Status.worst(r.status for r in self.results)

    def to_markdown(self) -> str:
        rows = ["| check | status | summary |", "| --- | --- | --- |"]
        rows += [f"| {r.name} | {r.status.value} | {r.summary.replace('|', '/')} |" for r in self.results]
        return "\n".join([*rows, "", self.classification.to_markdown()])

    def __str__(self) -> str:
        lines = [str(r) for r in self.results]
        return "\n".join([*lines, str(self.classification)])

    def _repr_mimebundle_(self, **_: Any) -> dict[str, Any]:
        return {
            "text/plain": str(self),
            "text/markdown": self.to_markdown(),
            SEVERITY_MIME: self.classification.to_dict(),
        }


def summarize(results: Iterable[CheckResult], *, policy: SeverityPolicy | None = None) -> Summary:
    """The triage table of `results` and the policy's suggested severity.

    A severity policy that cannot be read leaves the severity unknown, with the error, and
    never stops the run: the triage and the mitigations do not depend on it.
    """
    results = tuple(results)
    try:
        return Summary(results, classify(results, policy=policy))
    except ConfigError as exc:
        why = f"the severity policy cannot be read ({exc}); judge the level by hand and fix the policy"
        return Summary(results, Classification(None, (why,), unclassified=why))
