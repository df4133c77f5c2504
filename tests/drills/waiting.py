"""Waiting in tests: poll a condition to a deadline, never sleep for a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

from checks import Targets, prometheus
from checks._policy import parse_duration


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.25) -> None:
    """Return once `condition()` is true; fail naming `what` when `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


def wait_for_window_after(targets: Targets, since: float, *, what: str, job: str = "api") -> None:
    """Return once Prometheus's rate window holds only what the service did after `since`.

    `since` is a Unix time, such as the moment a fault was injected or cleared. Until
    the newest scrape of `job` is one rate window later, every rate the runbook reads
    mixes before and after, and can sit on either side of a threshold; a drill that
    reads it then asserts on chance. The condition is Prometheus's own scrape time,
    not the clock of this process, so a slow scrape only makes the wait longer.
    """
    window_s = parse_duration(targets.query.rate_window).total_seconds()
    promql = f'max(timestamp(up{{job="{targets.job(job)}"}}))'

    def settled() -> bool:
        scraped_at = prometheus.scalar(targets, promql)
        return scraped_at is not None and scraped_at - window_s >= since

    wait_for(settled, timeout_s=window_s + 30, what=f"a rate window of data after {what}", interval_s=0.5)
