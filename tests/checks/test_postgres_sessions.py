"""`check_idle_in_transaction` against the sandbox's real server."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from checks import Status, Targets, postgres
from tests.drills.waiting import wait_for

pytestmark = pytest.mark.sandbox


@pytest.fixture
def idle_sessions(runbook_targets: Targets) -> Iterator[list[psycopg.Connection]]:
    dsn = runbook_targets.endpoint("postgres")
    conns = []
    for _ in range(3):
        conn = psycopg.connect(dsn, application_name="leaky-client")
        conn.execute("SELECT 1")  # opens a transaction and leaves it open
        conns.append(conn)
    yield conns
    for conn in conns:
        conn.close()


def test_idle_transactions_are_crit_from_the_count_and_named_by_pid(
    runbook_targets: Targets, idle_sessions: list[psycopg.Connection]
) -> None:
    pids = {conn.info.backend_pid for conn in idle_sessions}
    wait_for(
        lambda: (
            pids
            <= set(
                postgres.check_idle_in_transaction(runbook_targets, older_than_s=0.2).evidence.get("pids", [])
            )
        ),
        timeout_s=5,
        what="the sessions to count as idle in transaction",
    )
    result = postgres.check_idle_in_transaction(runbook_targets, older_than_s=0.2, crit_count=3)
    assert result.status is Status.CRIT
    assert result.evidence["by_application"]["leaky-client"] >= 3
    one = postgres.check_idle_in_transaction(runbook_targets, older_than_s=0.2, crit_count=50)
    assert one.status is Status.WARN


def test_young_idle_transactions_are_not_reported(runbook_targets: Targets) -> None:
    assert postgres.check_idle_in_transaction(runbook_targets, older_than_s=3600).status is Status.OK


def test_a_dead_database_is_crit_not_an_exception() -> None:
    result = postgres.check_idle_in_transaction("postgresql://nobody@127.0.0.1:1/none")
    assert result.status is Status.CRIT
    assert "error" in result.evidence
