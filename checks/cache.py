"""Cache mitigations on Redis itself.

`set_maxmemory` raises Redis's memory limit with CONFIG SET; its plan reads the
current limit and the memory in use, and it never lowers a limit or sets one
where there is none.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis as redis_py

from checks._errors import ActionFailed, ConfigError
from checks.actions import Action, Effect, Plan
from checks.redis import client
from checks.targets import Targets

__all__ = ["SetMaxmemory", "set_maxmemory"]


def _mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


@dataclass(frozen=True, slots=True)
class SetMaxmemory(Action):
    """Multiply Redis's maxmemory by `factor` (at least `min_bytes` when given); never lower it."""

    targets: Targets
    factor: float = 2.0
    min_bytes: int = 0
    name: str = "raise Redis maxmemory"

    def _reading(self) -> tuple[int, int]:
        conn = client(self.targets)
        try:
            memory = conn.info("memory")
        finally:
            conn.close()
        return int(memory.get("maxmemory", 0)), int(memory.get("used_memory", 0))

    def _wanted(self, current: int) -> int:
        return max(int(current * self.factor), self.min_bytes)

    def plan(self) -> Plan:
        where = self.targets.endpoint("redis").split("@")[-1]
        try:
            current, used = self._reading()
        except redis_py.RedisError as exc:
            change = f"maxmemory times {self.factor:g} (cannot read it now: {type(exc).__name__}: {exc})"
        else:
            if current == 0:
                change = f"nothing: no maxmemory limit is set ({_mib(used)} in use)"
            else:
                new = self._wanted(current)
                change = f"maxmemory {_mib(current)} → {_mib(new)} ({_mib(used)} in use now)"
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=where,
            changes=(change,),
            command=("CONFIG SET", "maxmemory", f"<current times {self.factor:g}>"),
        )

    def apply(self) -> Effect:
        try:
            current, _ = self._reading()
            if current == 0:  # nothing to raise: evictions have another cause
                return Effect("held", "no maxmemory limit is set: nothing to raise", before=0, after=0)
            new = self._wanted(current)
            if new <= current:
                return Effect.observed(current, current, f"maxmemory already {_mib(current)}")
            conn = client(self.targets)
            try:
                conn.config_set("maxmemory", str(new))
            finally:
                conn.close()
            after, _ = self._reading()
        except redis_py.RedisError as exc:
            raise ActionFailed(f"CONFIG SET maxmemory failed: {type(exc).__name__}: {exc}") from exc
        return Effect.observed(current, after, f"maxmemory {_mib(current)} → {_mib(after)}")


def set_maxmemory(targets: Targets, *, factor: float = 2.0, min_bytes: int = 0) -> SetMaxmemory:
    """The action that raises Redis's maxmemory to `factor` times its current value (not persisted:
    write the new value into the Redis configuration too, or a restart undoes it)."""
    if factor <= 1.0:
        raise ConfigError(f"factor must be above 1 (this action only raises the limit), not {factor}")
    return SetMaxmemory(targets, factor=factor, min_bytes=min_bytes)
