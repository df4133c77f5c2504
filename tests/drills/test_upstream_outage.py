"""Drills: the LLM provider fails (503) or rate-limits us (429). The runbook must see it from the
provider's status page and our call metrics, hold the circuit open and turn the rollout off, see
the calls stop failing, and, once the provider is back, release the circuit and resume in stages."""

from __future__ import annotations

import time
from typing import Any

import pytest

from checks import Status, Targets, classify, http, load_severity
from checks.reference_service import admin, upstream, usage_log
from drillbook.runner import Runbook, RunRecord, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for, wait_for_window_after

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]


def _run(stem: str, **parameters: Any) -> RunRecord:
    execution = execute(
        Runbook.find("upstream-outage"), parameters={"env": "sandbox", "apply": True, **parameters}
    )
    write_outputs(execution, project_root() / "build" / "drills", stem=stem)
    record = execution.record
    assert record.status == "ok", record.error
    return record


def _restore(faults: Injector, fault: str, targets: Targets) -> None:
    """Back to normal: the fault cleared, the circuit automatic, the flag at its usual share."""
    faults.clear(fault)
    admin.close_circuit_breaker(targets).apply()
    faults.clear("bad-rollout")  # sets the rollout flag (and its skill) back to the sandbox's normal
    wait_for(
        lambda: (
            http.check_health(targets).ok
            and upstream.check_upstream_errors(targets).ok
            and upstream.check_circuit_breaker(targets).ok
            and usage_log.check_errors_by_type(targets).ok
        ),
        timeout_s=40,
        what="the api, the circuit and the usage log to be clean again after the drill",
    )


def _common(record: RunRecord) -> dict[str, Any]:
    diagnosis = {r.name: r for r in record.results("diagnosis")}
    assert record.severity is not None
    expected = classify(record.results("diagnosis")).level
    assert expected is not None
    assert record.severity["level"] == expected.id
    # Covered by the fallback, before and after the circuit opens: the one level the policy
    # gives a dependency down with a fallback, never SEV1 in one run and SEV4 in the next.
    policy = load_severity()
    assert [expected.id] == [
        level.id for level in policy.levels if "dependency_down_with_fallback" in level.triggers.conditions
    ], record.severity["reasons"]
    applied = [a["action"] for a in record.actions if a["state"] == "changed"]
    assert applied == ["open circuit breaker", "set rollout percentage"]
    planned = [a["action"] for a in record.actions if a["state"] == "planned"]
    assert planned == ["release circuit breaker", "staged rollout"]
    verified = record.results("verify")
    assert [v.status for v in verified] == [Status.OK] * 3, [v.summary for v in verified]
    return diagnosis


@pytest.mark.drill(runbook="upstream-outage", fault="upstream-outage")
def test_upstream_outage_is_confirmed_by_the_status_page_held_open_then_resumed_in_stages(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    faults.inject("upstream-outage")
    try:
        wait_for_window_after(runbook_targets, time.time(), what="the provider started failing")
        wait_for(
            lambda: upstream.check_upstream_errors(runbook_targets).status is Status.CRIT,
            timeout_s=30,
            what="Prometheus to see most upstream calls fail",
        )
        record = _run("upstream-outage--upstream-outage")
        diagnosis = _common(record)
        assert diagnosis["status-page"].status is Status.CRIT
        assert diagnosis["status-page"].evidence["indicator"] == "major"
        assert diagnosis["upstream-errors"].status is Status.CRIT
        assert diagnosis["provider-failures"].status is not Status.OK

        faults.clear("upstream-outage")  # the provider is back: release and resume in stages
        wait_for(
            lambda: upstream.check_status_page(runbook_targets).ok,
            timeout_s=10,
            what="the provider's status page to be operational again",
        )
        again = _run("upstream-outage--reenable", reenable=True, hold_s=0.5)
        applied = {a["action"]: a for a in again.actions if a["state"] == "changed"}
        assert set(applied) == {"release circuit breaker", "staged rollout"}
        assert "stopped" not in applied["staged rollout"]["detail"], applied["staged rollout"]["detail"]
        assert "25 %: every gate OK" in applied["staged rollout"]["detail"]
        recovery = [c for c in again.cells if "recovery" in c.tags]
        assert recovery, "the re-enable steps are the cells tagged recovery"
        assert {c.kind for c in recovery} == {"recovery"}
    finally:
        _restore(faults, "upstream-outage", runbook_targets)


@pytest.mark.drill(runbook="upstream-outage", fault="upstream-rate-limited")
def test_rate_limiting_is_seen_as_429s_and_held_off_by_the_circuit(
    sandbox: Driver, runbook_targets: Targets
) -> None:
    faults = Injector.attach(sandbox)
    faults.inject("upstream-rate-limited")
    try:
        # Until a whole rate window has passed, the share of 429s climbs from 0 through the
        # threshold: a runbook run at the first CRIT reading can read WARN a moment later.
        wait_for_window_after(runbook_targets, time.time(), what="the provider started rate-limiting")
        wait_for(
            lambda: upstream.check_rate_limited(runbook_targets).status is Status.CRIT,
            timeout_s=30,
            what="Prometheus to see the provider's 429 answers",
        )
        record = _run("upstream-outage--upstream-rate-limited")
        diagnosis = _common(record)
        assert diagnosis["upstream-429"].status is Status.CRIT
        assert diagnosis["status-page"].evidence["indicator"] == "minor"
    finally:
        _restore(faults, "upstream-rate-limited", runbook_targets)
