"""Resilience: every service-side runbook runs to completion, reporting rather than crashing,
while each dependency is down in turn; dry runs only, so nothing is changed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from checks import Targets, flags, http, prometheus, upstream
from drillbook.runner import Runbook, RunRecord, execute
from sandbox import Driver, stopped
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]

RUNBOOKS = (
    "service-down",
    "upstream-outage",
    "slow-responses",
    "high-error-rate",
    "bad-rollout",
    "deploy-validation",
)
DEPENDENCIES = ("api", "postgres", "redis", "prometheus", "upstream")


def _dry_runs() -> dict[str, RunRecord]:
    """Every runbook once, three at a time: with a dependency down most of a run is spent waiting
    on its timeouts, so the runs overlap well (each has its own kernel and event loop)."""

    def run(slug: str) -> RunRecord:
        return execute(Runbook.find(slug), parameters={"env": "sandbox"}).record

    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="resilience") as pool:
        return dict(zip(RUNBOOKS, pool.map(run, RUNBOOKS), strict=True))


@pytest.mark.parametrize("service", DEPENDENCIES)
def test_service_runbooks_report_while_a_dependency_is_down(
    sandbox: Driver, runbook_targets: Targets, service: str
) -> None:
    with stopped(sandbox, service):
        records = _dry_runs()
    for slug, record in records.items():
        assert record.status == "ok", f"{slug} with {service} down: {record.error}"
        assert record.results("diagnosis"), slug
        assert record.severity is not None, slug
        assert all(a["state"] == "planned" for a in record.actions), slug
    if service == "redis":
        Injector.attach(sandbox).clear("cache-down")  # a restarted Redis is empty: warm it
    wait_for(
        lambda: (
            http.check_health(runbook_targets).ok
            and prometheus.check_up(runbook_targets, "api").ok
            and upstream.check_circuit_breaker(runbook_targets).ok
            and flags.check_errors_by_type(runbook_targets).ok
        ),
        timeout_s=40,
        what=f"the sandbox to be healthy again after {service} came back (circuit closed, usage log clean)",
    )
