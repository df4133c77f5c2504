"""Drill: half of the API's requests fail with 500. The runbook must find that the errors are the
service's own (internal errors on every skill), restart it, and see the error ratio fall."""

from __future__ import annotations

import time

import pytest

from checks import Status, Targets, classify, load_severity, prometheus
from checks.reference_service import usage_log
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for, wait_for_window_after

# The policy's error-ratio triggers, as the runbook's notebook reads them: SEV3's and SEV2's.
WARN = load_severity().level("SEV3").triggers.threshold("error_ratio")
CRIT = load_severity().level("SEV2").triggers.threshold("error_ratio")

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


@pytest.mark.drill(runbook="high-error-rate", fault="error-burst")
def test_error_burst_is_traced_to_internal_errors_and_fixed_by_a_restart(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    faults.inject("error-burst")
    try:
        wait_for_window_after(runbook_targets, time.time(), what="half the requests began to fail")
        wait_for(
            lambda: prometheus.check_error_ratio(runbook_targets, warn=WARN, crit=CRIT).status is Status.CRIT,
            timeout_s=30,
            what="Prometheus to see the error ratio above 10 %",
        )
        execution = execute(Runbook.find("high-error-rate"), parameters={"env": "sandbox", "apply": True})
        write_outputs(execution, project_root() / "build" / "drills", stem="high-error-rate--error-burst")
        record = execution.record

        assert record.status == "ok", record.error
        diagnosis = {r.name: r for r in record.results("diagnosis")}
        assert diagnosis["error-ratio"].status is Status.CRIT
        assert diagnosis["internal-errors"].status is Status.CRIT
        assert diagnosis["errors-by-type"].evidence["dominant"] == "internal_error"
        assert "500" in str(diagnosis["errors-by-route"].evidence["routes"])
        assert diagnosis["failing-skill"].status is Status.OK, diagnosis["failing-skill"].summary
        assert record.severity is not None
        expected = classify(record.results("diagnosis")).level
        assert expected is not None
        assert expected.id in {"SEV1", "SEV2"}
        assert record.severity["level"] == expected.id
        applied = [a["action"] for a in record.actions if a["state"] == "changed"]
        assert applied == ["restart service"]
        (verified,) = record.results("verify")
        assert verified.status is Status.OK, verified.summary
    finally:
        faults.clear("error-burst")
        wait_for(
            lambda: (
                prometheus.check_error_ratio(runbook_targets, warn=WARN, crit=CRIT).ok
                and usage_log.check_errors_by_type(runbook_targets).ok
            ),
            timeout_s=40,
            what="the error ratio to be back under 5 % after the drill",
        )
