"""Drill: PostgreSQL stops. The runbook must see it from three sides, restart it, and see the pool recover."""

from __future__ import annotations

import pytest

from checks import Status, Targets, classify, http, postgres, prometheus
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


@pytest.mark.drill(runbook="database-down", fault="db-down")
def test_database_down_is_detected_restarted_and_the_pool_recovers(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    faults.inject("db-down")
    try:
        wait_for(
            lambda: postgres.check_exporter(runbook_targets).status is Status.CRIT,
            timeout_s=20,
            what="the exporter to report pg_up 0",
        )
        execution = execute(Runbook.find("database-down"), parameters={"env": "sandbox", "apply": True})
        write_outputs(execution, project_root() / "build" / "drills", stem="database-down--db-down")
        record = execution.record

        assert record.status == "ok", record.error
        diagnosis = {r.name: r for r in record.results("diagnosis")}
        assert diagnosis["postgres"].status is Status.CRIT
        assert "PostgreSQL is unreachable" in diagnosis["postgres"].summary
        assert diagnosis["health"].status is Status.CRIT
        assert "database" in diagnosis["health"].evidence["failing"]
        assert diagnosis["pg-exporter"].status is Status.CRIT
        expected = classify(record.results("diagnosis")).level
        assert expected is not None
        assert expected.id == "SEV1"
        assert record.severity is not None
        assert record.severity["level"] == expected.id
        assert [(a["action"], a["state"]) for a in record.actions] == [("restart service", "changed")]
        assert all(r.status is Status.OK for r in record.results("verify")), record.results("verify")
    finally:
        faults.clear("db-down")
        wait_for(
            lambda: (
                http.check_health(runbook_targets).ok
                and postgres.check_exporter(runbook_targets).ok
                and prometheus.check_error_ratio(runbook_targets).status is not Status.CRIT
            ),
            timeout_s=30,
            what="the database and the service to be healthy after the drill",
        )
