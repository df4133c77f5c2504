"""Drill: a release breaks the candidate skill and the flag sends it all its traffic. The runbook
must tie the errors to the flag's candidate, roll the flag back to 0 % and see the errors stop."""

from __future__ import annotations

import time

import pytest

from checks import Status, Targets, classify, prometheus
from checks.reference_service import flags
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for, wait_for_window_after

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


@pytest.mark.drill(runbook="bad-rollout", fault="bad-rollout")
def test_bad_rollout_is_tied_to_the_candidate_and_rolled_back(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    faults.inject("bad-rollout")
    try:
        wait_for_window_after(runbook_targets, time.time(), what="the flag sent all traffic to the candidate")
        wait_for(
            lambda: (
                flags.check_rollout(runbook_targets).status is Status.CRIT
                and not prometheus.check_route_error_ratio(runbook_targets).ok
            ),
            timeout_s=30,
            what="Prometheus to see summarise-v2 fail with the flag at 100 %, and customers' errors rise",
        )
        execution = execute(Runbook.find("bad-rollout"), parameters={"env": "sandbox", "apply": True})
        write_outputs(execution, project_root() / "build" / "drills", stem="bad-rollout--bad-rollout")
        record = execution.record

        assert record.status == "ok", record.error
        diagnosis = {r.name: r for r in record.results("diagnosis")}
        rollout = diagnosis["rollout"]
        assert rollout.status is Status.CRIT
        assert rollout.evidence["skill"] == "summarise-v2"
        assert rollout.evidence["rollout_percentage"] == 100
        assert diagnosis["error-ratio"].status in {Status.WARN, Status.CRIT}  # ~ the summarise share
        assert diagnosis["failing-skill"].status is Status.CRIT
        assert diagnosis["failing-skill"].evidence["skill"] == "summarise-v2"
        assert diagnosis["errors-by-type"].evidence["dominant"] == "invalid_request"
        expected = classify(record.results("diagnosis")).level
        assert expected is not None
        assert record.severity is not None
        assert record.severity["level"] == expected.id
        applied = [(a["action"], a["changes"]) for a in record.actions if a["state"] == "changed"]
        assert len(applied) == 1
        assert applied[0][0] == "set rollout percentage"
        assert "→ 0" in applied[0][1][0]
        assert [v.status for v in record.results("verify")] == [Status.OK, Status.OK]
    finally:
        faults.clear("bad-rollout")
        wait_for(
            lambda: (
                prometheus.check_route_error_ratio(runbook_targets).ok
                and flags.check_rollout(runbook_targets).ok
            ),
            timeout_s=40,
            what="the error ratio under 2 % and the candidate healthy again after the drill",
        )
