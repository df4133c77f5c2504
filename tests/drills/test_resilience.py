"""Resilience: every runbook runs to completion, reporting rather than crashing, while each
dependency is down in turn; dry runs only, so nothing is changed."""

from __future__ import annotations

import pytest

from checks import Status, Targets, http, prometheus
from checks.reference_service import upstream, usage_log
from drillbook.harness import run_many
from drillbook.runner import Runbook
from sandbox import Driver, stopped
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]

DEPENDENCIES = ("api", "postgres", "redis", "prometheus", "upstream")


@pytest.mark.parametrize("service", DEPENDENCIES)
def test_every_runbook_reports_while_a_dependency_is_down(
    sandbox: Driver, runbook_targets: Targets, service: str
) -> None:
    runbooks = Runbook.all()
    assert len(runbooks) >= 10
    with stopped(sandbox, service):
        # three at a time: with a dependency down most of a run waits on its timeouts
        runs = run_many(runbooks, parameters={"env": "sandbox"}, jobs=3)
    for runbook, run in zip(runbooks, runs, strict=True):
        record = run.record
        assert record.status == "ok", f"{runbook.slug} with {service} down: {record.error}"
        assert record.results("diagnosis"), runbook.slug
        assert record.severity is not None, runbook.slug
        assert all(a["state"] == "planned" for a in record.actions), runbook.slug
    if service == "redis":
        Injector.attach(sandbox).clear("cache-down")  # a restarted Redis is empty: warm it
    wait_for(
        lambda: (
            http.check_health(runbook_targets).ok
            and prometheus.check_up(runbook_targets, "api").ok
            and upstream.check_circuit_breaker(runbook_targets).ok
            and usage_log.check_errors_by_type(runbook_targets).ok
            and prometheus.check_cache_hit_ratio(runbook_targets, crit_below=0.30).status is not Status.CRIT
            and prometheus.check_error_ratio(runbook_targets).status is not Status.CRIT
        ),
        timeout_s=40,
        what=f"the sandbox to be healthy again after {service} came back",
    )
