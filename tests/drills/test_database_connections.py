"""Drills: connections leaked by a report job, and a migration holding a lock on usage_logs.

The runbook must see the cause in PostgreSQL itself, suggest the level the policy
gives for what it measured, terminate exactly the sessions at fault, and verify.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checks import Status, Targets, classify, http, postgres, prometheus
from drillbook.runner import Runbook, RunRecord, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]

IDLE_S = 3.0  # the drill's idle threshold: production keeps the notebook's 60 s


@pytest.fixture
def faults(sandbox: Driver, runbook_targets: Targets) -> Iterator[Injector]:
    injector = Injector.attach(sandbox)
    yield injector
    wait_for(
        lambda: (
            http.check_health(runbook_targets).ok
            and postgres.check_connections(runbook_targets).ok
            and postgres.check_blocked_queries(runbook_targets).ok
            and prometheus.check_error_ratio(runbook_targets).status is not Status.CRIT
        ),
        timeout_s=20,
        what="the database and the service to be healthy after the drill",
    )


def _run(fault: str) -> RunRecord:
    execution = execute(
        Runbook.find("database-connections"),
        parameters={"env": "sandbox", "apply": True, "idle_older_than_s": IDLE_S},
    )
    write_outputs(execution, project_root() / "build" / "drills", stem=f"database-connections--{fault}")
    record = execution.record
    assert record.status == "ok", record.error
    return record


def _assert_policy_severity(record: RunRecord) -> None:
    expected = classify(record.results("diagnosis"))
    assert expected.level is not None
    assert record.severity is not None
    assert record.severity["level"] == expected.level.id, record.severity


@pytest.mark.drill(runbook="database-connections", fault="db-pool-exhausted")
def test_leaked_connections_are_found_and_terminated(faults: Injector, runbook_targets: Targets) -> None:
    faults.inject("db-pool-exhausted")
    try:
        wait_for(
            lambda: len(postgres.idle_in_transaction(runbook_targets, older_than_s=IDLE_S)) >= 3,
            timeout_s=15,
            what="the leaked sessions to be idle in transaction",
        )
        record = _run("db-pool-exhausted")

        diagnosis = {r.name: r for r in record.results("diagnosis")}
        assert diagnosis["postgres-connections"].status is Status.CRIT
        idle = diagnosis["idle-in-transaction"]
        assert idle.status is Status.CRIT
        assert "drillbook-report-job" in idle.evidence["by_application"]
        _assert_policy_severity(record)
        states = {a["action"]: a for a in record.actions}
        assert states["terminate lock blockers"]["state"] == "unchanged"
        release = states["terminate idle transactions"]
        assert release["state"] == "changed"
        assert all("drillbook-report-job" not in c or "idle in transaction" in c for c in release["changes"])
        assert str(idle.evidence["pids"][0]) in release["detail"]
        assert all(r.status is Status.OK for r in record.results("verify")), record.results("verify")
    finally:
        faults.clear("db-pool-exhausted")


@pytest.mark.drill(runbook="database-connections", fault="db-lock-contention")
def test_lock_blocker_is_found_and_terminated(faults: Injector, runbook_targets: Targets) -> None:
    faults.inject("db-lock-contention")
    try:
        wait_for(
            lambda: bool(postgres.blocked_queries(runbook_targets)),
            timeout_s=15,
            what="inserts to wait behind the migration's lock",
        )
        record = _run("db-lock-contention")

        diagnosis = {r.name: r for r in record.results("diagnosis")}
        blocked = diagnosis["blocked-queries"]
        assert blocked.status is Status.CRIT
        _assert_policy_severity(record)
        unblock = next(a for a in record.actions if a["action"] == "terminate lock blockers")
        assert unblock["state"] == "changed"
        (victim,) = unblock["changes"]
        assert "LOCK TABLE usage_logs" in victim
        assert any(f"pid {pid} " in victim for pid in blocked.evidence["blockers"])
        assert "terminated pid" in unblock["detail"]
        assert all(r.status is Status.OK for r in record.results("verify")), record.results("verify")
    finally:
        faults.clear("db-lock-contention")
