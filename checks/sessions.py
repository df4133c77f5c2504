"""Mitigations on PostgreSQL sessions: terminate what holds connections or locks.

Kept apart from `checks.actions` so that a runbook that never touches the
database never loads its driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import psycopg

from checks._errors import ActionFailed, ProbeError
from checks.actions import Action, Effect, Plan
from checks.postgres import (
    Backend,
    blocked_queries,
    connect,
    idle_in_transaction,
    location,
    sessions,
    through_reserved,
)
from checks.targets import Targets

__all__ = ["TerminateBackends", "terminate_blockers", "terminate_idle_transactions"]


@dataclass(frozen=True, slots=True)
class TerminateBackends(Action):
    """Terminate PostgreSQL sessions chosen by a filter, listing each one in the plan.

    Only client backends are candidates: never the caller's own session, never
    replication or background workers. At apply time the filter is evaluated
    again, so a session that recovered in between is left alone. When every
    ordinary slot is taken, both the listing and the termination go through the
    environment's reserved connection (see `checks.postgres.connect`).
    """

    targets: Targets
    name: str
    reason: str
    select: Callable[[Targets], list[Backend]]

    def _victims(self) -> list[Backend]:
        return self.select(self.targets)

    def plan(self) -> Plan:
        try:
            victims = self._victims()
            changes = tuple(f"terminate {b.describe()}" for b in victims) or (
                f"nothing: no session is {self.reason}",
            )
        except ProbeError as exc:
            changes = (f"terminate every session {self.reason} (cannot list them now: {exc})",)
        return Plan(
            action=self.name,
            environment=self.targets.environment,
            target=location(self.targets),
            changes=changes,
            command=("SELECT pg_terminate_backend(pid)",),
        )

    def apply(self) -> Effect:
        victims = self._victims()
        if not victims:
            return Effect.observed([], [], f"no session is {self.reason}: nothing to terminate")
        pids = [b.pid for b in victims]
        try:
            with connect(self.targets, read_only=False) as conn:
                via_reserved = through_reserved(conn)
                rows = conn.execute(
                    """
                    SELECT pid, pg_terminate_backend(pid) AS terminated
                      FROM pg_stat_activity
                     WHERE pid = ANY(%(pids)s) AND backend_type = 'client backend'
                       AND pid <> pg_backend_pid()
                    """,
                    {"pids": pids},
                ).fetchall()
        except psycopg.Error as exc:
            raise ActionFailed(f"terminating pid {', '.join(map(str, pids))} failed: {exc}") from exc
        done = sorted(row["pid"] for row in rows if row["terminated"])
        gone = sorted(set(pids) - {row["pid"] for row in rows})
        text = f"terminated pid {', '.join(map(str, done)) or 'none'}"
        text += f"; already gone: {', '.join(map(str, gone))}" if gone else ""
        text += " (through the reserved connection: every ordinary slot was taken)" if via_reserved else ""
        # before: the sessions it found; after: those of them still there
        return Effect.observed(sorted(pids), sorted(set(pids) - set(done) - set(gone)), text)


def terminate_idle_transactions(targets: Targets, *, older_than_s: float) -> TerminateBackends:
    """Terminate sessions idle inside a transaction for longer than `older_than_s` seconds."""
    return TerminateBackends(
        targets,
        "terminate idle transactions",
        f"idle in transaction for more than {older_than_s:g} s",
        partial(_idle, older_than_s=older_than_s),
    )


def terminate_blockers(targets: Targets) -> TerminateBackends:
    """Terminate the sessions at the head of lock chains: those that block others and wait on nobody."""
    return TerminateBackends(targets, "terminate lock blockers", "blocking other sessions", _blockers)


def _idle(targets: Targets, *, older_than_s: float) -> list[Backend]:
    return idle_in_transaction(targets, older_than_s=older_than_s)


def _blockers(targets: Targets) -> list[Backend]:
    waiting = blocked_queries(targets)
    heads = {pid for b in waiting for pid in b.blocked_by} - {b.pid for b in waiting}
    every = {b.pid: b for b in sessions(targets)}
    return [every[pid] for pid in sorted(heads) if pid in every]
