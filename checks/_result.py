"""`CheckResult`: what one check observed, and how it renders."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from checks._errors import CheckFailed, ProbeError

#: The MIME types under which a result, an action and a severity travel in a notebook's
#: outputs. Here together, so that a reader of outputs (the runner) needs none of the
#: modules that produce them.
RESULT_MIME = "application/vnd.drillbook.result+json"
ACTION_MIME = "application/vnd.drillbook.action+json"
SEVERITY_MIME = "application/vnd.drillbook.severity+json"

# What came of a mitigation step (checks.actions says what each state means).
OutcomeState = Literal["planned", "changed", "unchanged", "skipped", "held", "refused", "failed"]
# A run stops after a step that ends in one of these: nothing after it may assume it worked.
STOPPING_STATES: frozenset[OutcomeState] = frozenset({"refused", "failed"})


def observed_change(before: Any, after: Any) -> str:
    """What a step observed of its target, "before → after", or "" when it observed nothing."""
    if before is None and after is None:
        return ""

    def shown(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value, default=str)

    return f"{shown(before)} → {shown(after)}"


class Status(enum.Enum):
    """How a check judged what it observed, from best to worst.

    NOT_APPLICABLE is no judgement: the environment lacks what the check needs (a signal it
    does not export, an adapter it does not have); it is neither a finding nor an error.
    """

    NOT_APPLICABLE = "N/A"
    OK = "OK"
    WARN = "WARN"
    UNKNOWN = "UNKNOWN"
    CRIT = "CRIT"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @classmethod
    def worst(cls, statuses: Iterable[Status]) -> Status:
        """The worst of `statuses`; OK when there are none."""
        return max(statuses, key=lambda s: s.rank, default=cls.OK)

    @property
    def problem(self) -> bool:
        """Whether this is an observed problem (WARN or CRIT): what a mitigation may act on."""
        return self in (Status.WARN, Status.CRIT)


_RANK = {Status.NOT_APPLICABLE: -1, Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 2, Status.CRIT: 3}
_ICON = {
    Status.NOT_APPLICABLE: "⚫",
    Status.OK: "🟢",
    Status.WARN: "🟡",
    Status.UNKNOWN: "⚪",
    Status.CRIT: "🔴",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _plain(value: Any) -> Any:
    """`value` reduced to JSON types, so a result can be written and read back."""
    return json.loads(json.dumps(value, default=str))


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check observed.

    `evidence` holds the facts behind the verdict (JSON-compatible values);
    `measurements` holds the quantities the severity policy reads, under the
    names of its `measures` (`availability`, `error_ratio`, `saturation`, ...);
    `conditions` the facts it reads, under the names of its `conditions`
    (`credential_leak`, `dependency_down_with_fallback`, ...).
    """

    name: str
    status: Status
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    remedy: str = ""
    measurements: Mapping[str, float] = field(default_factory=dict)
    observed_at: datetime = field(default_factory=utcnow)
    conditions: AbstractSet[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", _plain(dict(self.evidence)))
        object.__setattr__(self, "measurements", {k: float(v) for k, v in self.measurements.items()})
        object.__setattr__(self, "conditions", frozenset(self.conditions))

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @property
    def applies(self) -> bool:
        """Whether the check applied to this environment (anything but NOT_APPLICABLE)."""
        return self.status is not Status.NOT_APPLICABLE

    def raise_for_status(self) -> CheckResult:
        """Return self when OK or not applicable; raise `CheckFailed` (WARN, CRIT) or `ProbeError`
        (UNKNOWN)."""
        if self.status is Status.NOT_APPLICABLE:
            return self
        if self.status is Status.UNKNOWN:
            raise ProbeError(f"{self.name}: {self.summary}", target=self.name)
        if self.status is not Status.OK:
            raise CheckFailed(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "remedy": self.remedy,
            "measurements": dict(self.measurements),
            "conditions": sorted(self.conditions),
            "observed_at": self.observed_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        return cls(
            name=data["name"],
            status=Status(data["status"]),
            summary=data["summary"],
            evidence=data.get("evidence", {}),
            remedy=data.get("remedy", ""),
            measurements=data.get("measurements", {}),
            observed_at=datetime.fromisoformat(data["observed_at"]),
            conditions=frozenset(data.get("conditions", ())),
        )

    def to_markdown(self) -> str:
        lines = [f"{_ICON[self.status]} **{self.name}**: {self.status.value}. {self.summary}"]
        if self.evidence:
            lines.append("")
            lines.extend(f"- {key}: `{_inline(value)}`" for key, value in self.evidence.items())
        if self.remedy and not self.ok and self.applies:
            lines += ["", f"*Remedy:* {self.remedy}"]
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"[{self.status.value}] {self.name}: {self.summary}"

    def _repr_mimebundle_(self, **_: Any) -> dict[str, Any]:
        return {"text/plain": str(self), "text/markdown": self.to_markdown(), RESULT_MIME: self.to_dict()}


def _inline(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text.replace("`", "'")


def ladder(value: float, *, warn: float, crit: float, worse: Literal["above", "below"] = "above") -> Status:
    """The one OK/WARN/CRIT ladder: CRIT from `crit`, WARN from `warn`, OK short of both.

    `worse="above"` (an error ratio, a latency): bands start at their threshold, inclusive.
    `worse="below"` (a hit rate, free memory): CRIT under `crit`, WARN under `warn`.
    """
    if worse == "above":
        return Status.CRIT if value >= crit else Status.WARN if value >= warn else Status.OK
    return Status.CRIT if value < crit else Status.WARN if value < warn else Status.OK


def unobserved(
    name: str, missing: str, *, configure: str = "", evidence: Mapping[str, Any] | None = None
) -> CheckResult:
    """The verdict of a check that could not observe: UNKNOWN, saying what was missing and, when
    configuration can fix it, how. Never OK: no data is not good news."""
    return CheckResult(name, Status.UNKNOWN, missing, dict(evidence or {}), remedy=configure)


def not_applicable(name: str, needs: str, *, requires: Sequence[str], configure: str = "") -> CheckResult:
    """The verdict of a check that the environment cannot answer: it lacks what the check needs.
    `requires` names it (capabilities, signals, settings: what a runbook's `needs` declares)."""
    remedy = configure or "Nothing to do unless this environment has it: then declare it in environments.yml."
    summary = f"not applicable here: needs {needs}"
    return CheckResult(name, Status.NOT_APPLICABLE, summary, {"needs": list(requires)}, remedy)
