"""Drill: every API request takes 2.5 s longer. The runbook must find that the time is spent in the
service (not the provider, not one skill, not the cache), restart it, and see p95 fall back."""

from __future__ import annotations

import pytest

from checks import Status, Targets, classify, prometheus
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


@pytest.mark.drill(runbook="slow-responses", fault="latency")
def test_added_latency_is_traced_to_the_service_and_fixed_by_a_restart(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    faults.inject("latency")
    try:
        wait_for(
            lambda: (
                prometheus.check_latency_quantile(runbook_targets, warn_s=1, crit_s=2).status is Status.CRIT
            ),
            timeout_s=30,
            what="Prometheus to see p95 above 2 s",
        )
        execution = execute(Runbook.find("slow-responses"), parameters={"env": "sandbox", "apply": True})
        write_outputs(execution, project_root() / "build" / "drills", stem="slow-responses--latency")
        record = execution.record

        assert record.status == "ok", record.error
        diagnosis = {r.name: r for r in record.results("diagnosis")}
        assert diagnosis["p95-latency"].status is Status.CRIT
        source = diagnosis["latency-source"]
        assert source.status is Status.CRIT, source.summary
        assert "spent in the service" in source.summary
        assert diagnosis["slow-skill"].status is Status.OK, diagnosis["slow-skill"].summary
        assert diagnosis["upstream-latency"].status is Status.OK
        expected = classify(record.results("diagnosis")).level
        assert expected is not None
        assert record.severity is not None
        assert record.severity["level"] == expected.id == "SEV3"
        applied = [a["action"] for a in record.actions if a["state"] == "changed"]
        assert applied == ["restart service"]
        (verified,) = record.results("verify")
        assert verified.status is Status.OK, verified.summary
    finally:
        faults.clear("latency")
        wait_for(
            lambda: prometheus.check_latency_quantile(runbook_targets, warn_s=1, crit_s=2).ok,
            timeout_s=40,
            what="p95 to be back under 1 s after the drill",
        )
