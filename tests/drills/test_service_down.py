"""Drill: the service process dies. The runbook must detect it, restart it and see it recover."""

from __future__ import annotations

import pytest

from checks import Status, Targets, http, prometheus
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


@pytest.mark.drill(runbook="service-down", fault="service-down")
def test_service_down_is_detected_as_sev1_restarted_and_verified(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    sandbox.stop("api")
    try:
        # The fault is in place once Prometheus has seen a failed scrape.
        wait_for(
            lambda: prometheus.check_up(runbook_targets, "api").status is Status.CRIT,
            timeout_s=30,
            what="Prometheus to record up == 0 for the stopped api",
        )

        execution = execute(Runbook.find("service-down"), parameters={"env": "sandbox", "apply": True})
        write_outputs(execution, project_root() / "build" / "drills", stem="service-down--service-down")
        record = execution.record

        assert record.status == "ok", record.error
        diagnosis = {r.name: r.status for r in record.results("diagnosis")}
        assert diagnosis == {
            "health": Status.CRIT,
            "listening": Status.CRIT,
            "up": Status.CRIT,
            "rollout": Status.OK,
        }
        (listening,) = [r for r in record.results("diagnosis") if r.name == "listening"]
        assert "nothing accepts connections" in listening.summary, listening.summary
        assert record.severity is not None
        assert record.severity["level"] == "SEV1"
        assert [(a["action"], a["state"]) for a in record.actions] == [
            ("restart service", "changed"),
            ("set rollout percentage", "unchanged"),
        ]
        (verified,) = record.results("verify")
        assert verified.status is Status.OK, verified.summary
        assert sandbox.status()["api"] == "running"
    finally:
        if sandbox.status()["api"] != "running":
            sandbox.start("api")
        wait_for(
            lambda: http.check_health(runbook_targets).ok and prometheus.check_up(runbook_targets, "api").ok,
            timeout_s=30,
            what="the api to be healthy and scraped again after the drill",
        )


def test_dry_run_against_the_outage_plans_but_changes_nothing(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    sandbox.stop("api")
    try:
        execution = execute(Runbook.find("service-down"), parameters={"env": "sandbox"})
        record = execution.record
        assert record.status == "ok", record.error
        assert [a["state"] for a in record.actions] == ["planned", "planned"]
        assert record.results("verify")[0].status is Status.CRIT
        assert sandbox.status()["api"] != "running"
    finally:
        sandbox.start("api")
        wait_for(
            lambda: http.check_health(runbook_targets).ok and prometheus.check_up(runbook_targets, "api").ok,
            timeout_s=30,
            what="the api to be scraped again after the drill",
        )
