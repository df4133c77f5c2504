"""Resilience: every data-side runbook runs to completion, reporting rather than crashing,
while each of its dependencies is down in turn."""

from __future__ import annotations

import pytest

from checks import Status, Targets, http, prometheus, redis
from drillbook.kernels import launch
from drillbook.runner import Runbook, execute
from sandbox import Driver, stopped
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]

RUNBOOKS = (
    "database-connections",
    "database-down",
    "cache-degradation",
    "cost-spike",
    "security-incident",
)
DEPENDENCIES = ("api", "postgres", "redis", "prometheus", "upstream")


@pytest.mark.parametrize("service", DEPENDENCIES)
def test_data_runbooks_report_while_a_dependency_is_down(
    sandbox: Driver, runbook_targets: Targets, service: str
) -> None:
    records = {}
    with stopped(sandbox, service):
        kernel = launch()
        for n, slug in enumerate(RUNBOOKS):
            upcoming = launch() if n + 1 < len(RUNBOOKS) else None  # boots while this one runs
            try:
                records[slug] = execute(
                    Runbook.find(slug), parameters={"env": "sandbox"}, kernel=kernel
                ).record
            except BaseException:
                if upcoming is not None:
                    upcoming.stop()
                raise
            if upcoming is not None:
                kernel = upcoming
    for slug, record in records.items():
        assert record.status == "ok", f"{slug} with {service} down: {record.error}"
        assert record.results("diagnosis"), slug
        assert all(a["state"] == "planned" for a in record.actions), slug
    if service == "redis":
        Injector.attach(sandbox).clear("cache-down")  # a restarted Redis is empty: warm it
    wait_for(
        lambda: (
            http.check_health(runbook_targets).ok
            and prometheus.check_up(runbook_targets, "api").ok
            and redis.check_service_hit_rate(runbook_targets).status is not Status.CRIT
            and prometheus.check_error_ratio(runbook_targets).status is not Status.CRIT
        ),
        timeout_s=30,
        what=f"the sandbox to be healthy again after {service} came back",
    )
