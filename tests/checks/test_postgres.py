"""PostgreSQL probes and session actions against the sandbox's real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from checks import Gate, Status, Targets, postgres, terminate_blockers, terminate_idle_transactions
from tests.drills.waiting import wait_for

pytestmark = pytest.mark.sandbox


@pytest.fixture
def admin_dsn(runbook_targets: Targets) -> str:
    return runbook_targets.endpoint("postgres")


@pytest.fixture
def idle_transaction(admin_dsn: str) -> Iterator[psycopg.Connection]:
    """A session that opened a transaction and then went quiet, as a leaking client does."""
    conn = psycopg.connect(admin_dsn, application_name="leaky-client")
    conn.execute("SELECT 1")  # opens the transaction and leaves it open
    yield conn
    conn.close()


def test_healthy_database_is_reachable_and_far_from_its_limit(runbook_targets: Targets) -> None:
    assert postgres.check_reachable(runbook_targets).status is Status.OK
    connections = postgres.check_connections(runbook_targets)
    assert connections.status is Status.OK
    assert connections.evidence["max_connections"] > 0


def test_when_the_database_is_unreachable_then_checks_report_crit_not_raise() -> None:
    dead = "postgresql://nobody@127.0.0.1:1/none"
    assert postgres.check_reachable(dead).status is Status.CRIT
    result = postgres.check_connections(dead)
    assert result.status is Status.CRIT
    assert "127.0.0.1:1" in result.evidence["target"]


def test_idle_transaction_is_listed_planned_and_terminated_but_never_the_caller(
    runbook_targets: Targets, idle_transaction: psycopg.Connection
) -> None:
    pid = idle_transaction.info.backend_pid
    wait_for(
        lambda: any(b.pid == pid for b in postgres.idle_in_transaction(runbook_targets, older_than_s=0)),
        timeout_s=10,
        what="the leaky session to show as idle in transaction",
    )
    action = terminate_idle_transactions(runbook_targets, older_than_s=0)

    plan = Gate.for_targets(runbook_targets).run(action)
    assert plan.state == "planned"
    assert any(f"pid {pid} " in change for change in plan.plan.changes)
    assert not idle_transaction.closed

    applied = Gate.for_targets(runbook_targets, apply=True).run(action)
    assert f"terminated pid {pid}" in applied.detail
    assert applied.state == "changed"
    assert pid in applied.before
    assert pid not in applied.after
    with pytest.raises(psycopg.OperationalError):
        idle_transaction.execute("SELECT 1")
    # idempotent: nothing left to terminate
    again = Gate.for_targets(runbook_targets, apply=True).run(action)
    assert "nothing to terminate" in again.detail
    assert (again.state, again.before, again.after) == ("unchanged", [], [])


def test_lock_chain_is_seen_with_its_blocker_and_only_the_blocker_is_terminated(
    runbook_targets: Targets, admin_dsn: str
) -> None:
    holder = psycopg.connect(admin_dsn, application_name="lock-holder")
    holder.execute("LOCK TABLE skills IN ACCESS EXCLUSIVE MODE")
    waiter_error: list[BaseException] = []

    def wait_on_lock() -> None:
        try:
            with psycopg.connect(admin_dsn, application_name="lock-waiter", autocommit=True) as waiter:
                waiter.execute("SELECT count(*) FROM skills")
        except BaseException as exc:  # reported by the assertion below
            waiter_error.append(exc)

    thread = threading.Thread(target=wait_on_lock)
    thread.start()
    try:
        wait_for(
            lambda: postgres.check_blocked_queries(runbook_targets).status is Status.CRIT,
            timeout_s=10,
            what="the waiter to block on the lock",
        )
        blocked = postgres.check_blocked_queries(runbook_targets)
        assert blocked.evidence["blockers"] == [holder.info.backend_pid]

        outcome = Gate.for_targets(runbook_targets, apply=True).run(terminate_blockers(runbook_targets))
        assert outcome.detail == f"terminated pid {holder.info.backend_pid}"
        thread.join(timeout=10)
        assert not thread.is_alive()
        assert waiter_error == []  # the waiter went on once the blocker was gone
        assert postgres.check_blocked_queries(runbook_targets).status is Status.OK
    finally:
        holder.close()
        thread.join(timeout=10)
