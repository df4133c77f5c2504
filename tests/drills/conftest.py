"""Drill results for the site: build/drills/summary.json, one entry per runbook and fault.

Each drill test names what it drills with `@pytest.mark.drill(runbook=..., fault=...)`;
its outcome and duration are merged into the summary when the session ends, so
the site can say "drill passed in N s" next to the runbook.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import pytest

from checks import Status, Targets, http, prometheus
from drillbook.runner import project_root
from tests.drills.waiting import wait_for

SUMMARY = project_root() / "build" / "drills" / "summary.json"
_RESULTS: dict[tuple[str, str], dict[str, Any]] = {}
BASELINE_HIT_RATIO = 0.45  # a warm cache serves 55 to 70 % of the traffic; runbooks warn under 30 %


@pytest.fixture(autouse=True)
def quiet_sandbox(request: pytest.FixtureRequest) -> None:
    """Every drill starts from a healthy, quiet sandbox: the rate windows of the drill
    before it have drained, so no test inherits another's fault.

    That includes the cache: an emptied cache takes a minute of traffic to fill again,
    and a runbook that reads its misses rightly warms it as well. The cache must be
    back at its usual hit ratio, clear of the runbooks' floor, not just over it.
    """
    if request.node.get_closest_marker("drill") is None:
        return
    targets: Targets = request.getfixturevalue("runbook_targets")
    wait_for(
        lambda: (
            http.check_health(targets).ok
            and prometheus.check_route_error_ratio(targets).ok
            and prometheus.check_latency_quantile(targets).status is not Status.CRIT
            and prometheus.check_cache_hit_ratio(targets, warn_below=BASELINE_HIT_RATIO).ok
        ),
        timeout_s=90,
        what="a healthy, quiet sandbox before the drill (health; /api errors, latency, cache hits)",
        interval_s=0.5,
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    marker = item.get_closest_marker("drill")
    if marker is None or "runbook" not in marker.kwargs or report.when != "call":
        return report
    key = (marker.kwargs["runbook"], marker.kwargs["fault"])
    _RESULTS[key] = {
        "fault": key[1],
        "passed": report.passed,
        "duration_s": round(call.duration, 2),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _RESULTS:
        return
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    # Parallel workers each merge their own drills: one at a time, under a lock.
    with SUMMARY.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            summary: dict[str, list[dict[str, Any]]] = json.loads(SUMMARY.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            summary = {}
        for (runbook, fault), result in _RESULTS.items():
            kept = [entry for entry in summary.get(runbook, []) if entry.get("fault") != fault]
            summary[runbook] = [*kept, result]
        tmp = SUMMARY.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        tmp.replace(SUMMARY)
