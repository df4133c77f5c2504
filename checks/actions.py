"""Mitigations: an `Action` says what it would change (`plan`) and changes it (`apply`).

Nothing mutates except through a `Gate`, which reads the environment's policy:
without `apply=True` every step is a dry run that shows its plan; an
environment whose gate is `confirm` also needs a confirmation naming it.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from checks._errors import ActionFailed, ActionRefused, ConfigError
from checks._result import CheckResult, utcnow
from checks.targets import Targets

__all__ = ["ACTION_MIME", "Action", "Gate", "Outcome", "Plan", "RestartService", "restart_service"]

ACTION_MIME = "application/vnd.drillbook.action+json"


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
class Outcome:
    """What the gate did with an action: planned only, skipped, or applied."""

    plan: Plan
    state: Literal["planned", "skipped", "applied"]
    reason: str
    detail: str = ""
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime = field(default_factory=utcnow)

    @property
    def applied(self) -> bool:
        return self.state == "applied"

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
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
        }

    def to_markdown(self) -> str:
        head = {"planned": "📝 Dry run", "skipped": "⏭️ Skipped", "applied": "✅ Applied"}[self.state]
        text = f"{head}: {self.reason}\n\n{self.plan.to_markdown()}"
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
    def apply(self) -> str:
        """Make the change; return what the platform answered. Raise `ActionFailed` on failure."""


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
        """Plan `action` and, when allowed, apply it.

        With `evidence`, the action is applied only when some of those results
        are not OK: a restart is not a remedy for a healthy service.
        """
        plan = action.plan()
        if evidence is not None:
            failing = [r.name for r in evidence if not r.ok]
            if not failing:
                return Outcome(plan, "skipped", "every check it depends on is OK")
        if not self.apply:
            return Outcome(plan, "planned", "dry run; run with apply=True to make this change")
        if self.policy == "confirm" and self.confirm != self.environment:
            raise ActionRefused(
                f"{plan.action} on {plan.target} refused: environment {self.environment!r} needs a "
                f"confirmation naming it (confirm={self.environment!r}, or --confirm {self.environment}). "
                "Nothing was changed."
            )
        started = utcnow()
        detail = action.apply()
        return Outcome(plan, "applied", f"applied in {self.environment}", detail, started, utcnow())


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

    def plan(self) -> Plan:
        argv = self._argv()
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=self.targets.service_name(self.service),
            changes=(f"the {self.service} process is stopped if running and started again",),
            command=argv,
        )

    def apply(self) -> str:
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
        return answer


def restart_service(targets: Targets, service: str) -> RestartService:
    """The action that restarts `service` (a logical name: api, postgres, redis) in `targets`."""
    return RestartService(targets, service)
