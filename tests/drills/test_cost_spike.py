"""Drill: the provider's answers grow tenfold. The runbook must name the skills whose cost per
call broke the policy's 50 % threshold, cap their max tokens, and see the cost per call fall."""

from __future__ import annotations

import time

import pytest

from checks import Gate, Status, Targets, classify
from checks.reference_service import admin, costs
from checks.reference_service.admin import admin_state
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for, wait_for_window_after

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


@pytest.mark.drill(runbook="cost-spike", fault="cost-spike")
def test_cost_spike_is_capped_per_skill_and_verified(sandbox: Driver, runbook_targets: Targets) -> None:
    faults = Injector.attach(sandbox)
    before = {name: s["max_tokens"] for name, s in admin_state(runbook_targets)["skills"].items()}
    faults.inject("cost-spike")
    try:
        wait_for_window_after(runbook_targets, time.time(), what="the answers grew")
        wait_for(
            lambda: costs.check_cost_per_call(runbook_targets).status is Status.CRIT,
            timeout_s=25,
            what="the cost per call to cross the threshold",
        )
        execution = execute(Runbook.find("cost-spike"), parameters={"env": "sandbox", "apply": True})
        write_outputs(execution, project_root() / "build" / "drills", stem="cost-spike--cost-spike")
        record = execution.record

        assert record.status == "ok", record.error
        cost = next(r for r in record.results("diagnosis") if r.name == "cost-per-call")
        assert cost.status is Status.CRIT
        assert cost.evidence["offenders"]
        expected = classify(record.results("diagnosis")).level
        assert expected is not None
        assert record.severity is not None
        assert record.severity["level"] == expected.id
        (capped,) = record.actions
        assert capped["action"] == "lower max tokens"
        assert capped["state"] == "changed"
        assert any(skill in capped["detail"] for skill in cost.evidence["offenders"])
        (verified,) = record.results("verify")
        assert verified.status is Status.OK, verified.summary
    finally:
        faults.clear("cost-spike")
        gate = Gate("sandbox", "apply", apply=True)
        for skill, max_tokens in before.items():  # the fault's clear leaves the caps alone
            gate.run(admin.set_max_tokens(runbook_targets, skill, max_tokens))
        wait_for(
            lambda: costs.check_cost_per_call(runbook_targets).status is not Status.CRIT,
            timeout_s=25,
            what="the cost per call to be back at its baseline",
        )
