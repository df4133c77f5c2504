"""Every band of the verdicts that judge what a database, a cache or a sample of requests said:
each threshold starts its band, so flipping a comparison makes one of these fail
(scripts/flip-comparisons runs the unit tests against every flipped comparison)."""

from __future__ import annotations

import pytest

from checks import Status, http, postgres, redis


def _stats(in_use: int, *, max_connections: int = 103, reserved: int = 3) -> postgres.ConnectionStats:
    return postgres.ConnectionStats(max_connections, reserved, {"active": in_use})


@pytest.mark.parametrize(
    ("in_use", "expected"), [(69, Status.OK), (70, Status.WARN), (89, Status.WARN), (90, Status.CRIT)]
)
def test_connection_bands_start_at_their_ratios(in_use: int, expected: Status) -> None:
    verdict = postgres.connections_verdict(_stats(in_use), warn_ratio=0.7, crit_ratio=0.9)
    assert verdict.status is expected


def _backend(seconds: float, *, pid: int = 1, application: str = "worker") -> postgres.Backend:
    return postgres.Backend(pid, "app", application, "10.0.0.1", "active", "SELECT 1", seconds, seconds, None)


@pytest.mark.parametrize(
    ("longest", "expected"), [(30.0, Status.WARN), (299.0, Status.WARN), (300.0, Status.CRIT)]
)
def test_a_long_query_is_crit_from_its_threshold(longest: float, expected: Status) -> None:
    verdict = postgres.long_running_verdict([_backend(longest)], warn_s=30.0, crit_s=300.0)
    assert verdict.status is expected


def test_no_long_query_is_ok() -> None:
    assert postgres.long_running_verdict([], warn_s=30.0, crit_s=300.0).ok


@pytest.mark.parametrize(
    ("sessions", "oldest", "expected"),
    [(0, 0.0, Status.OK), (2, 299.0, Status.WARN), (3, 61.0, Status.CRIT), (1, 300.0, Status.CRIT)],
)
def test_idle_transactions_are_crit_from_a_count_or_an_age(
    sessions: int, oldest: float, expected: Status
) -> None:
    idle = [_backend(oldest if pid == 0 else 61.0, pid=pid) for pid in range(sessions)]
    verdict = postgres.idle_verdict(idle, older_than_s=60.0, crit_count=3, crit_s=300.0)
    assert verdict.status is expected


def _cache(hits: int, misses: int, *, evicted: int = 0) -> redis.CacheStats:
    return redis.CacheStats(
        hits, misses, evicted, used_memory=1, maxmemory=0, maxmemory_policy="noeviction", keys=1
    )


@pytest.mark.parametrize(
    ("hits", "misses", "expected"),
    [(29, 71, Status.WARN), (30, 70, Status.OK), (9, 90, Status.UNKNOWN), (10, 90, Status.WARN)],
)
def test_hit_rate_is_a_warning_under_its_floor_and_unknown_with_too_few_lookups(
    hits: int, misses: int, expected: Status
) -> None:
    assert redis.hit_rate_verdict(_cache(hits, misses), floor=0.30, min_lookups=100).status is expected


@pytest.mark.parametrize(
    ("evicted", "since", "expected"), [(5, 5, Status.OK), (6, 5, Status.WARN), (0, 0, Status.OK)]
)
def test_evictions_since_a_reading_are_a_warning(evicted: int, since: int, expected: Status) -> None:
    assert redis.evictions_verdict(_cache(1, 1, evicted=evicted), since=since).status is expected


@pytest.mark.parametrize(
    ("ttls", "expected"), [((), Status.CRIT), ((29, 29, 29), Status.CRIT), ((30, 30, 30), Status.OK)]
)
def test_keys_that_expire_before_reuse_are_crit(ttls: tuple[int, ...], expected: Status) -> None:
    survey = redis.TtlSurvey("cache:*", sampled=len(ttls), without_ttl=0, ttls=ttls)
    assert redis.ttl_verdict(survey, pattern="cache:*", min_ttl_s=30.0).status is expected


@pytest.mark.parametrize(
    ("seconds", "errors", "expected"),
    [
        ((0.5,) * 20, {}, Status.OK),
        ((1.0,) * 20, {}, Status.WARN),
        ((2.0,) * 20, {}, Status.CRIT),
        ((0.5,) * 19, {"timeout": 1}, Status.WARN),
    ],
)
def test_a_sample_of_requests_is_judged_by_its_p95_and_any_failure(
    seconds: tuple[float, ...], errors: dict[str, int], expected: Status
) -> None:
    sample = http.LatencySample("http://api.test/health", seconds, errors)
    assert http.latency_verdict(sample, warn_s=1.0, crit_s=2.0).status is expected
