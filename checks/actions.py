"""Mitigations: an `Action` says what it would change (`plan`) and changes it (`apply`).

Nothing mutates except through a `Gate`, which reads the environment's policy:
without `apply=True` every step is a dry run that shows its plan; an
environment whose gate is `confirm` also needs a confirmation naming it.

Every step ends in one `Outcome` state, and only `changed` says the target changed:

    planned     a dry run: the plan was shown, nothing was asked to change
    changed     applied, and the target is not what it was (before and after differ)
    unchanged   no change needed: the checks it acts on are OK, or the target
                already was as wanted
    skipped     not applied: none of its evidence observed a problem, and some of it
                could not observe (UNKNOWN) or does not apply here (N/A); or the step
                needs something this environment does not have
    held        nothing changed: a precondition failed, or a gate inside the step stopped it
    refused     the environment's gate refused it (production without a confirmation)
    failed      it ran and the platform reported a failure; what changed is unknown
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from checks._errors import ActionFailed, CheckError, ConfigError
from checks._result import ACTION_MIME, CheckResult, OutcomeState, observed_change, utcnow
from checks.targets import Targets

__all__ = [
    "ACTION_MIME",
    "Action",
    "Effect",
    "Gate",
    "Outcome",
    "Plan",
    "RestartService",
    "restart_service",
]

_HEADS: dict[OutcomeState, str] = {
    "planned": "📝 Dry run",
    "changed": "✅ Changed",
    "unchanged": "⚪ No change needed",
    "skipped": "⏭️ Skipped, nothing changed",
    "held": "⏸️ Held, nothing changed",
    "refused": "⛔ Refused, nothing changed",
    "failed": "❌ Failed",
}


@dataclass(frozen=True, slots=True)
class Plan:
    """Exactly what an action would change, where, and how."""

    action: str
    environment: str
    target: str
    changes: tuple[str, ...]
    command: tuple[str, ...] = ()

    def to_markdown(self) -> str:
        lines = [f"**{self.action}** on `{self.target}` in **{self.environment}**:"]
        lines += [f"- {change}" for change in self.changes]
        if self.command:
            lines.append(f"- command: `{' '.join(self.command)}`")
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Effect:
    """What `Action.apply` did, as it observed the target before and after."""

    state: Literal["changed", "unchanged", "held"]
    detail: str
    before: Any = None
    after: Any = None

    @classmethod
    def observed(cls, before: Any, after: Any, detail: str) -> Effect:
        """`changed` when `after` differs from `before`, else `unchanged`."""
        return cls("changed" if before != after else "unchanged", detail, before, after)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What came of an action: its state, why, and what was observed before and after."""

    plan: Plan
    state: OutcomeState
    reason: str
    detail: str = ""
    before: Any = None
    after: Any = None
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime = field(default_factory=utcnow)

    @property
    def changed(self) -> bool:
        """Whether the target changed: what a verify step waits for."""
        return self.state == "changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.plan.action,
            "environment": self.plan.environment,
            "target": self.plan.target,
            "changes": list(self.plan.changes),
            "command": list(self.plan.command),
            "state": self.state,
            "reason": self.reason,
            "detail": self.detail,
            "before": self.before,
            "after": self.after,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
        }

    def to_markdown(self) -> str:
        text = f"{_HEADS[self.state]}: {self.reason}\n\n{self.plan.to_markdown()}"
        if observed := observed_change(self.before, self.after):
            text += f"\n\nobserved: `{observed}`"
        return text + (f"\n\n```\n{self.detail}\n```" if self.detail else "")

    def __str__(self) -> str:
        return f"{self.state}: {self.plan.action} on {self.plan.target} ({self.reason})"

    def _repr_mimebundle_(self, **_: Any) -> dict[str, Any]:
        return {"text/plain": str(self), "text/markdown": self.to_markdown(), ACTION_MIME: self.to_dict()}


class Action(ABC):
    """A mitigation step. `plan()` never changes anything; `apply()` is idempotent."""

    name: str

    @abstractmethod
    def plan(self) -> Plan: ...

    @abstractmethod
    def apply(self) -> Effect:
        """Make the change and say what it observed. Raise `ActionFailed` on failure."""

    def lacking(self) -> str | None:
        """What this environment lacks for the step (an adapter, a platform command), or None."""
        return None


def _unplanned(action: Action, environment: str) -> Plan:
    """The plan of a step that cannot be planned here: its name, and nothing it would change."""
    return Plan(action=action.name, environment=environment, target="-", changes=())


@dataclass(frozen=True, slots=True)
class Gate:
    """Decides whether an action is applied, from the environment's policy and the caller's intent."""

    environment: str
    policy: Literal["apply", "confirm"]
    apply: bool = False
    confirm: str = ""

    @classmethod
    def for_targets(cls, targets: Targets, *, apply: bool = False, confirm: str = "") -> Gate:
        return cls(targets.environment, targets.gate, apply=apply, confirm=confirm)

    def run(self, action: Action, *, evidence: Iterable[CheckResult] | None = None) -> Outcome:
        """Plan `action` and, when allowed, apply it; never raises for a refusal or a failure.

        With `evidence`, the action is applied only when one of those results observed a
        problem (WARN or CRIT): a restart is not a remedy for a healthy service, and a check
        that could not observe (UNKNOWN) or does not apply here (N/A) is no reason to change
        anything. Such a step is `skipped`, and says which evidence was missing.
        """
        if (lacking := action.lacking()) is not None:
            return Outcome(
                _unplanned(action, self.environment), "skipped", f"not applicable here: needs {lacking}"
            )
        plan = action.plan()
        results = None if evidence is None else list(evidence)
        observed = results is None or any(r.status.problem for r in results)
        if not self.apply:
            reason = "dry run; run with apply=True to make this change"
            if not observed:
                reason += " (not needed now: no check it depends on observed a problem)"
            return Outcome(plan, "planned", reason)
        if not observed:
            blind = [f"{r.name} ({r.status.value}: {r.summary})" for r in results or () if not r.ok]
            if blind:
                return Outcome(
                    plan, "skipped",
                    f"skipped: could not observe {'; '.join(blind)}. A mitigation acts only on an "
                    "observed problem",
                )  # fmt: skip
            return Outcome(plan, "unchanged", "no change needed: every check it depends on is OK")
        if self.policy == "confirm" and self.confirm != self.environment:
            return Outcome(
                plan, "refused",
                f"environment {self.environment!r} needs a confirmation naming it "
                f"(confirm={self.environment!r}, or --confirm {self.environment}). Nothing was changed.",
            )  # fmt: skip
        started = utcnow()
        try:
            effect = action.apply()
        except CheckError as exc:  # ActionFailed, or the platform could not be reached half way
            return Outcome(plan, "failed", f"{type(exc).__name__}: {exc}", started_at=started)
        reason = {
            "changed": f"changed in {self.environment}",
            "unchanged": "no change needed: the target already was as wanted",
            "held": "held: nothing changed",
        }[effect.state]
        return Outcome(
            plan, effect.state, reason, effect.detail, effect.before, effect.after, started, utcnow()
        )


@dataclass(frozen=True, slots=True)
class RestartService(Action):
    """Restart a service through the environment's platform command (an argv list)."""

    targets: Targets
    service: str
    timeout_s: float = 120.0
    name: str = "restart service"

    def _argv(self) -> tuple[str, ...]:
        template: Sequence[str] | None = self.targets.platform.get("restart")
        if not template:
            raise ConfigError(
                f"environment {self.targets.environment!r} has no platform restart command; "
                "add platform.restart to environments.yml"
            )
        platform_name = self.targets.service_name(self.service)
        return tuple(part.replace("{service}", platform_name) for part in template)

    def lacking(self) -> str | None:
        if self.targets.platform.get("restart"):
            return None
        where = f"platform.restart of {self.targets.environment!r} in environments.yml"
        return f"a platform restart command ({where})"

    def plan(self) -> Plan:
        argv = self._argv()
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=self.targets.service_name(self.service),
            changes=(f"the {self.service} process is stopped if running and started again",),
            command=argv,
        )

    def apply(self) -> Effect:
        argv = self._argv()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError as exc:
            raise ActionFailed(f"platform command not found: {argv[0]} ({exc.strerror})") from exc
        except subprocess.TimeoutExpired as exc:
            raise ActionFailed(f"`{' '.join(argv)}` did not finish within {self.timeout_s:g} s") from exc
        answer = (done.stdout + done.stderr).strip()
        if done.returncode != 0:
            raise ActionFailed(f"`{' '.join(argv)}` exited {done.returncode}: {answer[-500:]}")
        # A new process is the change; the platform's answer is all that is observed of it.
        return Effect("changed", answer or f"`{' '.join(argv)}` exited 0")


def restart_service(targets: Targets, service: str) -> RestartService:
    """The action that restarts `service` (a logical name: api, postgres, redis) in `targets`."""
    return RestartService(targets, service)
