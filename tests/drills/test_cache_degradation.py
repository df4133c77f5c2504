"""Drills: Redis stops, the cache goes cold, Redis evicts. The runbook must name the cause,
apply the mitigation that fixes it, and see the hit rate climb back over the floor."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from checks import Status, Targets, classify, http, prometheus, redis
from drillbook.runner import Runbook, RunRecord, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for, wait_for_window_after

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]

FLOOR = 0.30  # the runbook's hit rate floor (its hit_rate_floor parameter)


@pytest.fixture
def faults(sandbox: Driver, runbook_targets: Targets) -> Iterator[Injector]:
    yield Injector.attach(sandbox)
    wait_for(
        lambda: (
            http.check_health(runbook_targets).ok
            and redis.check_eviction_rate(runbook_targets).ok
            and prometheus.check_cache_hit_ratio(runbook_targets).ok
        ),
        timeout_s=30,
        what="Redis and the service's hit rate to be healthy after the drill",
    )


def _run(fault: str) -> tuple[RunRecord, dict[str, Status], dict[str, str]]:
    execution = execute(Runbook.find("cache-degradation"), parameters={"env": "sandbox", "apply": True})
    write_outputs(execution, project_root() / "build" / "drills", stem=f"cache-degradation--{fault}")
    record = execution.record
    assert record.status == "ok", record.error
    expected = classify(record.results("diagnosis")).level
    assert expected is not None
    assert record.severity is not None
    assert record.severity["level"] == expected.id
    verify = record.results("verify")
    assert all(r.status is Status.OK for r in verify), [str(r) for r in verify]
    diagnosis = {r.name: r.status for r in record.results("diagnosis")}
    return record, diagnosis, {a["action"]: a["state"] for a in record.actions}


@pytest.mark.drill(runbook="cache-degradation", fault="cache-down")
def test_redis_down_is_restarted_and_warmed(faults: Injector, runbook_targets: Targets) -> None:
    faults.inject("cache-down")
    try:
        wait_for(
            lambda: redis.check_reachable(runbook_targets).status is Status.CRIT,
            timeout_s=10,
            what="Redis to stop answering",
        )
        record, diagnosis, actions = _run("cache-down")
        assert diagnosis["redis"] is Status.CRIT
        assert "unreachable" in next(r for r in record.results("diagnosis") if r.name == "redis").summary
        assert actions["restart service"] == "changed"
        assert actions["warm cache"] == "changed"
    finally:
        faults.clear("cache-down")


@pytest.mark.drill(runbook="cache-degradation", fault="cache-cold")
def test_cold_cache_gets_its_ttl_back_and_is_warmed(faults: Injector, runbook_targets: Targets) -> None:
    faults.inject("cache-cold")
    try:
        wait_for_window_after(runbook_targets, time.time(), what="the cache was flushed")
        wait_for(
            lambda: prometheus.check_cache_hit_ratio(runbook_targets, crit_below=FLOOR).status is Status.CRIT,
            timeout_s=25,
            what="the hit rate to fall under the floor",
        )
        record, diagnosis, actions = _run("cache-cold")
        assert diagnosis["cache-hit-ratio"] is Status.CRIT
        ttls = next(r for r in record.results("diagnosis") if r.name == "cache-ttls")
        assert ttls.status is Status.CRIT, ttls.summary
        assert diagnosis["redis"] is Status.OK
        assert actions["restart service"] == "unchanged"
        assert actions["set cache TTL"] == "changed"
        assert actions["warm cache"] == "changed"
    finally:
        faults.clear("cache-cold")


@pytest.mark.drill(runbook="cache-degradation", fault="cache-evictions")
def test_evictions_get_more_memory(faults: Injector, runbook_targets: Targets) -> None:
    faults.inject("cache-evictions")
    try:
        wait_for(
            lambda: redis.check_eviction_rate(runbook_targets).status is Status.CRIT,
            timeout_s=15,
            what="Prometheus to see evictions",
        )
        record, _, actions = _run("cache-evictions")
        evictions = next(r for r in record.results("diagnosis") if r.name == "cache-eviction-rate")
        assert evictions.status is Status.CRIT
        assert evictions.evidence["evicted_per_s"] > 0
        assert actions["restart service"] == "unchanged"
        assert actions["raise Redis maxmemory"] == "changed"
        room = next(a for a in record.actions if a["action"] == "raise Redis maxmemory")
        assert "→" in room["detail"]
    finally:
        faults.clear("cache-evictions")
