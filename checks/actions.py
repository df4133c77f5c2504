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

import json
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from checks._admin import admin_call, admin_state
from checks._errors import ActionFailed, CheckError, ConfigError
from checks._result import ACTION_MIME, CheckResult, OutcomeState, observed_change, utcnow
from checks.targets import Targets

__all__ = [
    "ACTION_MIME",
    "Action",
    "AdminChange",
    "Effect",
    "Gate",
    "Outcome",
    "Plan",
    "RestartService",
    "close_circuit_breaker",
    "disable_skill",
    "disable_user",
    "enable_skill",
    "open_circuit_breaker",
    "restart_service",
    "revoke_api_key",
    "set_cache_ttl",
    "set_max_tokens",
    "set_rollout_percentage",
    "set_upstream_timeout",
    "warm_cache",
]

#: The capability of an environment whose service has the reference service's admin API.
REFERENCE_ADMIN = "reference-admin"

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


# --------------------------------------------------------------------------- the service's switches


@dataclass(frozen=True, slots=True)
class AdminChange(Action):
    """Set one switch of the service through its admin API.

    `reading` names where the switch's current value sits in GET /admin/state
    (a path of keys), so the plan can say "from X to Y"; the service answers
    every change with what it was before and after, and setting a value it
    already has changes nothing.
    """

    targets: Targets
    name: str
    method: str
    path: str
    body: Any
    what: str
    wanted: Any
    reading: tuple[str, ...] = ()

    def lacking(self) -> str | None:
        return self.targets.lacks(REFERENCE_ADMIN)

    def _current(self) -> str:
        if not self.reading:
            return ""
        try:
            value: Any = admin_state(self.targets)
            for key in self.reading:
                value = value[key]
        except (CheckError, KeyError, TypeError) as exc:
            return f" (current value unknown: {exc})"
        return f" (now {value!r})" if value != self.wanted else f" (already {value!r}: no change)"

    def plan(self) -> Plan:
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=f"{self.targets.endpoint('api')}{self.path}",
            changes=(f"{self.what} → {self.wanted!r}{self._current()}",),
            command=(self.method, self.path, json.dumps(self.body)),
        )

    def apply(self) -> Effect:
        answer = admin_call(self.targets, self.method, self.path, self.body)
        detail = json.dumps(answer, default=str)
        if isinstance(answer, dict) and "before" in answer and "after" in answer:
            return Effect.observed(answer["before"], answer["after"], detail)
        if isinstance(answer, dict) and "warmed" in answer:  # POST /admin/cache/warm
            warmed = answer["warmed"]
            if warmed:
                return Effect("changed", detail, before=[], after=warmed)
            return Effect("held", f"no skill was warmed (the upstream did not answer): {detail}")
        return Effect("changed", detail, after=answer)


def set_rollout_percentage(targets: Targets, percentage: int) -> AdminChange:
    """Send `percentage` % of eligible requests through skills (0 turns skills off)."""
    if not 0 <= percentage <= 100:
        raise ConfigError(f"rollout percentage must be 0 to 100, not {percentage}")
    return AdminChange(
        targets, "set rollout percentage", "PUT", "/admin/rollout", {"percentage": percentage},
        "skill rollout percentage", percentage, ("rollout_percentage",),
    )  # fmt: skip


def disable_skill(targets: Targets, skill: str) -> AdminChange:
    """Stop routing requests to `skill`; callers get the plain path."""
    return _skill_switch(targets, skill, enabled=False)


def enable_skill(targets: Targets, skill: str) -> AdminChange:
    return _skill_switch(targets, skill, enabled=True)


def _skill_switch(targets: Targets, skill: str, *, enabled: bool) -> AdminChange:
    verb = "enable" if enabled else "disable"
    return AdminChange(
        targets, f"{verb} skill", "PUT", f"/admin/skills/{skill}", {"enabled": enabled},
        f"skill {skill} enabled", enabled, ("skills", skill, "enabled"),
    )  # fmt: skip


def set_max_tokens(targets: Targets, skill: str, max_tokens: int) -> AdminChange:
    """Cap the tokens one call of `skill` may use."""
    if max_tokens <= 0:
        raise ConfigError(f"max_tokens must be positive, not {max_tokens}")
    return AdminChange(
        targets, "set max tokens", "PUT", f"/admin/skills/{skill}", {"max_tokens": max_tokens},
        f"max tokens of skill {skill}", max_tokens, ("skills", skill, "max_tokens"),
    )  # fmt: skip


def open_circuit_breaker(targets: Targets) -> AdminChange:
    """Force the upstream circuit open: every call takes the fallback path."""
    return _circuit(targets, "open")


def close_circuit_breaker(targets: Targets) -> AdminChange:
    """Hand the circuit back to its automatic behaviour (closed until failures open it)."""
    return _circuit(targets, "auto")


def _circuit(targets: Targets, state: str) -> AdminChange:
    wanted = state == "open"
    return AdminChange(
        targets, f"{'open' if wanted else 'release'} circuit breaker", "PUT", "/admin/circuit",
        {"state": state}, "circuit breaker forced open", wanted, ("circuit", "forced"),
    )  # fmt: skip


def set_cache_ttl(targets: Targets, seconds: int) -> AdminChange:
    """How long the service keeps an answer in its cache."""
    if seconds < 1:
        raise ConfigError(f"cache TTL must be at least 1 second, not {seconds}")
    return AdminChange(
        targets, "set cache TTL", "PUT", "/admin/cache", {"ttl_seconds": seconds},
        "cache TTL in seconds", seconds, ("cache_ttl_seconds",),
    )  # fmt: skip


def warm_cache(targets: Targets, skills: Sequence[str]) -> AdminChange:
    """Fill the cache for `skills` now instead of waiting for misses."""
    return AdminChange(
        targets, "warm cache", "POST", "/admin/cache/warm", {"skills": list(skills)},
        "cache entries filled for skills", list(skills),
    )  # fmt: skip


def set_upstream_timeout(targets: Targets, seconds: float) -> AdminChange:
    """How long the service waits for the upstream provider before giving up."""
    if seconds <= 0:
        raise ConfigError(f"upstream timeout must be positive, not {seconds}")
    return AdminChange(
        targets, "set upstream timeout", "PUT", "/admin/upstream", {"timeout_seconds": seconds},
        "upstream timeout in seconds", seconds, ("upstream_timeout_seconds",),
    )  # fmt: skip


def revoke_api_key(targets: Targets, key_id: int) -> AdminChange:
    """Revoke an API key and every refresh token of its user."""
    return AdminChange(
        targets, "revoke API key", "POST", f"/admin/api-keys/{key_id}/revoke", None,
        f"API key {key_id} and its user's refresh tokens revoked", True,
    )  # fmt: skip


def disable_user(targets: Targets, user_id: int) -> AdminChange:
    """Disable a user: every request with their keys is refused."""
    return AdminChange(
        targets, "disable user", "POST", f"/admin/users/{user_id}/disable", None,
        f"user {user_id} disabled", True,
    )  # fmt: skip
