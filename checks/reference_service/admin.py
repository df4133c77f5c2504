"""The reference service's admin API: the switches its mitigations flip (rollout, skills, circuit
breaker, cache, upstream timeout, keys, users), each an `Action` that reads the switch before and
after. Every one needs the environment's `reference-admin` capability.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from checks._errors import ActionFailed, CheckError, ConfigError, ProbeError
from checks.actions import Action, Effect, Plan
from checks.targets import REFERENCE_ADMIN, Targets

__all__ = [
    "REFERENCE_ADMIN",
    "AdminChange",
    "admin_call",
    "admin_state",
    "close_circuit_breaker",
    "disable_skill",
    "disable_user",
    "enable_skill",
    "open_circuit_breaker",
    "revoke_api_key",
    "set_cache_ttl",
    "set_max_tokens",
    "set_rollout_percentage",
    "set_upstream_timeout",
    "warm_cache",
]


DEFAULT_TIMEOUT_S = 10.0


def admin_call(
    targets: Targets, method: str, path: str, body: Any = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Any:
    """Call an admin route with the environment's admin token; the JSON answer.

    A transport failure is a `ProbeError` (nothing is known to have changed); an
    answer with an error status is an `ActionFailed` carrying what the service said.
    """
    url = targets.endpoint("api").rstrip("/") + path
    headers = {"Authorization": f"Bearer {targets.secret('admin_token')}"}
    try:
        response = httpx.request(method, url, json=body, headers=headers, timeout=timeout_s)
    except httpx.TimeoutException as exc:
        raise ProbeError(f"the admin API gave no answer within {timeout_s:g} s", target=url) from exc
    except httpx.TransportError as exc:
        raise ProbeError(f"cannot reach the admin API: {type(exc).__name__}: {exc}", target=url) from exc
    if response.status_code in (401, 403):
        raise ActionFailed(
            f"{method} {path}: the admin token was refused (HTTP {response.status_code}); "
            "check the environment's admin_token secret"
        )
    if response.status_code >= 400:
        raise ActionFailed(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
    return response.json() if response.content else None


def admin_state(targets: Targets) -> dict[str, Any]:
    """What the service's switches are set to now (GET /admin/state)."""
    state: dict[str, Any] = admin_call(targets, "GET", "/admin/state")
    return state


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
