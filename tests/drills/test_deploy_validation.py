"""Deployment validation: on a healthy sandbox the staged rollout climbs 1 % → 5 % → 25 % through
its gates; with the cache down, validation is red and the rollout never starts."""

from __future__ import annotations

import pytest

from checks import Status, Targets, http
from checks.reference_service import flags
from drillbook.runner import Runbook, RunRecord, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


def _normal_flag(faults: Injector, targets: Targets) -> None:
    """The flag back to the sandbox's normal share, and Prometheus has seen it."""
    faults.clear("bad-rollout")
    wait_for(
        lambda: (
            flags.check_rollout_target(targets, 25).status is Status.WARN and flags.check_rollout(targets).ok
        ),
        timeout_s=30,
        what="Prometheus to see the flag back under 25 %, its candidate healthy",
    )


def _run(stem: str) -> RunRecord:
    execution = execute(
        Runbook.find("deploy-validation"),
        parameters={"env": "sandbox", "apply": True, "hold_s": 0.5, "settle_s": 10.0},
    )
    write_outputs(execution, project_root() / "build" / "drills", stem=stem)
    record = execution.record
    assert record.status == "ok", record.error
    return record


def test_healthy_environment_passes_validation_and_rolls_out_in_stages(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    _normal_flag(faults, runbook_targets)
    try:
        record = _run("deploy-validation--healthy")
        assert {r.name: r.status for r in record.results("diagnosis") if not r.ok} == {}
        (staged,) = record.actions
        assert staged["state"] == "changed", staged
        assert staged["after"] == 25, staged
        assert staged["detail"].splitlines() == [f"{p} %: every gate OK" for p in (1, 5, 25)]
        assert [r.status for r in record.results("verify")] == [Status.OK, Status.OK]
    finally:
        _normal_flag(faults, runbook_targets)


@pytest.mark.drill(runbook="deploy-validation", fault="cache-down")
def test_with_the_cache_down_validation_is_red_and_the_rollout_never_starts(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    _normal_flag(faults, runbook_targets)
    faults.inject("cache-down")
    try:
        record = _run("deploy-validation--cache-down")
        diagnosis = {r.name: r.status for r in record.results("diagnosis")}
        assert diagnosis["redis"] is Status.CRIT
        (staged,) = record.actions
        assert staged["state"] == "held", staged
        assert staged["before"] == staged["after"], staged
        assert staged["detail"].startswith("not started"), staged["detail"]
    finally:
        faults.clear("cache-down")
        _normal_flag(faults, runbook_targets)
        wait_for(
            lambda: http.check_health(runbook_targets).ok, timeout_s=30, what="the api to be healthy again"
        )
