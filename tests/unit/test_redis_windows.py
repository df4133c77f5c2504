"""Windowed cache verdicts read from Prometheus: hit rate and eviction rate."""

from __future__ import annotations

import httpx

from checks import Status, redis
from checks.testing import prometheus_transport, targets


def _answer(value: float | None) -> httpx.Client:
    return httpx.Client(transport=prometheus_transport(lambda _: [] if value is None else [({}, value)]))


def test_hit_rate_under_the_floor_is_crit_and_over_it_ok() -> None:
    assert redis.check_service_hit_rate(targets(), floor=0.3, client=_answer(0.1)).status is Status.CRIT
    ok = redis.check_service_hit_rate(targets(), floor=0.3, client=_answer(0.8))
    assert ok.status is Status.OK
    assert ok.evidence["hit_rate"] == 0.8


def test_hit_rate_without_lookups_or_prometheus_is_unknown() -> None:
    assert redis.check_service_hit_rate(targets(), client=_answer(None)).status is Status.UNKNOWN
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert redis.check_service_hit_rate(targets(), client=broken).status is Status.UNKNOWN


def test_evictions_now_are_crit_none_ok_no_series_unknown() -> None:
    assert redis.check_eviction_rate(targets(), client=_answer(3.5)).status is Status.CRIT
    assert redis.check_eviction_rate(targets(), client=_answer(0)).status is Status.OK
    assert redis.check_eviction_rate(targets(), client=_answer(None)).status is Status.UNKNOWN
