"""Drills: connections leaked by a report job, and a migration holding a lock on usage_logs.

The runbook must see the cause in PostgreSQL itself, suggest the level the policy
gives for what it measured, terminate exactly the sessions at fault, and verify.
With every ordinary slot taken it must get in through the reserved connection.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
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


def _cli_run(out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`drillbook run database-connections --apply` as an on-call engineer types it."""
    argv = [sys.executable, "-m", "drillbook", "run", "database-connections", "--apply"]
    argv += ["-p", f"idle_older_than_s={IDLE_S}", "--out", str(out)]
    done = subprocess.run(
        argv, cwd=project_root(), capture_output=True, text=True, timeout=240, env=dict(os.environ)
    )
    record: dict[str, Any] = json.loads((out / "database-connections.json").read_text(encoding="utf-8"))
    return done, record


@pytest.mark.drill(runbook="database-connections", fault="db-slots-full")
def test_with_every_slot_taken_the_runbook_sees_full_and_terminates_through_the_reserved_slots(
    faults: Injector, runbook_targets: Targets, tmp_path: Path
) -> None:
    ordinary = runbook_targets.endpoint("postgres")  # a DSN string: no reserved way in
    faults.inject("db-slots-full")
    try:
        held = {conn.info.backend_pid for conn in faults.held}
        assert len(held) >= 50, "the fault took every ordinary slot"
        with pytest.raises(psycopg.OperationalError, match="remaining connection slots are reserved"):
            psycopg.connect(ordinary, connect_timeout=2).close()
        wait_for(
            lambda: len(postgres.idle_in_transaction(runbook_targets, older_than_s=IDLE_S)) >= len(held),
            timeout_s=15,
            what="the leaked sessions to be idle in transaction (read through the reserved slots)",
        )
        done, record = _cli_run(tmp_path / "record")

        # 1: findings, as the README documents: mitigations applied, none refused (3) or failed (4)
        assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
        cells = record["cells"]
        results = {r["name"]: r for cell in cells if cell["kind"] == "diagnosis" for r in cell["results"]}
        actions = {a["action"]: a for cell in cells for a in cell["actions"]}
        connections = results["postgres-connections"]
        assert connections["status"] == "CRIT"
        assert connections["summary"].startswith("full: ")
        assert "unreachable" not in connections["summary"]
        assert connections["evidence"]["through_reserved"] is True
        assert connections["evidence"]["in_use"] == connections["evidence"]["available"]
        assert any("drillbook-report-job" in h for h in connections["evidence"]["holders"])
        idle = results["idle-in-transaction"]
        assert idle["status"] == "CRIT"
        assert held <= set(idle["evidence"]["pids"])
        for name in ("long-running-queries", "blocked-queries"):
            assert results[name]["status"] == "OK", results[name]  # observed, not "unreachable"

        release = actions["terminate idle transactions"]
        assert release["state"] == "changed", release
        assert "through the reserved connection" in release["detail"]
        assert held <= set(release["before"])
        assert not held & set(release["after"])
        assert actions["terminate lock blockers"]["state"] == "unchanged"
        verify = [r for cell in cells if cell["kind"] == "verify" for r in cell["results"]]
        assert len(verify) == 3
        assert all(r["status"] == "OK" for r in verify), verify

        # recovered: an ordinary session gets in again, and the database is far from full
        with psycopg.connect(ordinary, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        assert postgres.check_connections(ordinary).status is Status.OK
    finally:
        faults.clear("db-slots-full")
