"""Windowed cache verdicts read from Prometheus: the service's hit ratio and Redis's eviction rate."""

from __future__ import annotations

import httpx
import pytest

from checks import Status, prometheus, redis
from checks.testing import prometheus_transport, targets


def _answer(value: float | None) -> httpx.Client:
    return httpx.Client(transport=prometheus_transport(lambda _: [] if value is None else [({}, value)]))


def _lookups(hits: float, total: float) -> httpx.Client:
    return httpx.Client(
        transport=prometheus_transport(lambda q: [({}, hits if 'result="hit"' in q else total)])
    )


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [(0.05, Status.CRIT), (0.1, Status.WARN), (0.29, Status.WARN), (0.3, Status.OK), (0.8, Status.OK)],
)
def test_hit_ratio_bands_fall_under_their_floors(ratio: float, expected: Status) -> None:
    result = prometheus.check_cache_hit_ratio(
        targets(), warn_below=0.3, crit_below=0.1, client=_lookups(ratio * 10, 10)
    )
    assert result.status is expected
    assert result.evidence["hit_ratio"] == ratio


def test_hit_ratio_without_lookups_or_prometheus_is_unknown() -> None:
    assert prometheus.check_cache_hit_ratio(targets(), client=_answer(None)).status is Status.UNKNOWN
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert prometheus.check_cache_hit_ratio(targets(), client=broken).status is Status.UNKNOWN


def test_a_hit_ratio_from_a_window_whose_samples_stopped_is_unknown() -> None:
    stale = httpx.Client(transport=prometheus_transport(lambda q: [({}, 5.0)], age_s=None))
    result = prometheus.check_cache_hit_ratio(targets(), client=stale)
    assert result.status is Status.UNKNOWN
    assert "no current sample" in result.summary


def test_evictions_now_are_crit_none_ok_no_series_unknown() -> None:
    assert redis.check_eviction_rate(targets(), client=_answer(3.5)).status is Status.CRIT
    assert redis.check_eviction_rate(targets(), client=_answer(0)).status is Status.OK
    assert redis.check_eviction_rate(targets(), client=_answer(None)).status is Status.UNKNOWN


@pytest.mark.parametrize(
    ("used", "expected"),
    [(79, Status.OK), (80, Status.WARN), (94, Status.WARN), (95, Status.CRIT), (100, Status.CRIT)],
)
def test_memory_bands_start_at_their_ratios(used: int, expected: Status) -> None:
    stats = redis.CacheStats(0, 0, 0, used_memory=used, maxmemory=100, maxmemory_policy="allkeys-lru", keys=1)
    assert redis.memory_verdict(stats, warn_ratio=0.8, crit_ratio=0.95).status is expected


def test_memory_full_under_noeviction_says_writes_are_refused() -> None:
    stats = redis.CacheStats(0, 0, 0, used_memory=100, maxmemory=100, maxmemory_policy="noeviction", keys=1)
    result = redis.memory_verdict(stats, warn_ratio=0.8, crit_ratio=0.95)
    assert result.status is Status.CRIT
    assert "refuses writes" in result.summary
    assert result.evidence["maxmemory_policy"] == "noeviction"


def test_without_a_memory_limit_memory_is_fine() -> None:
    stats = redis.CacheStats(0, 0, 0, used_memory=10**9, maxmemory=0, maxmemory_policy="noeviction", keys=1)
    assert redis.memory_verdict(stats, warn_ratio=0.8, crit_ratio=0.95).ok


def test_a_hit_ratio_of_a_handful_of_lookups_is_unknown_not_a_verdict() -> None:
    # 0.06 look-ups a second over the test targets' 5 m window: 18, under the 20 it takes
    client = _lookups(0.0, 0.06)
    result = prometheus.check_cache_hit_ratio(targets(), client=client)
    assert result.status is Status.UNKNOWN
    assert "too few to judge" in result.summary
    enough = prometheus.check_cache_hit_ratio(targets(), client=_lookups(0.0, 0.07))  # 21
    assert enough.status is Status.WARN
