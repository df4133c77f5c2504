"""Drill results for the site: build/drills/summary.json, one entry per runbook and fault.

Each drill test names what it drills with `@pytest.mark.drill(runbook=..., fault=...)`;
its outcome and duration are merged into the summary when the session ends, so
the site can say "drill passed in N s" next to the runbook.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

import pytest

from drillbook.runner import project_root

SUMMARY = project_root() / "build" / "drills" / "summary.json"
_RESULTS: dict[tuple[str, str], dict[str, Any]] = {}


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
    try:
        summary: dict[str, list[dict[str, Any]]] = json.loads(SUMMARY.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    for (runbook, fault), result in _RESULTS.items():
        kept = [entry for entry in summary.get(runbook, []) if entry.get("fault") != fault]
        summary[runbook] = [*kept, result]
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    tmp = SUMMARY.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    tmp.replace(SUMMARY)
