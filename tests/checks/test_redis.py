"""Redis probes against the sandbox's real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from checks import Status, Targets
from checks import redis as cache

pytestmark = pytest.mark.sandbox


@pytest.fixture
def server(runbook_targets: Targets) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(runbook_targets.endpoint("redis"), decode_responses=True, socket_timeout=5)
    yield client
    client.delete(*[f"survey:{n}" for n in range(30)], "survey:forever")
    client.close()


def test_ttl_survey_samples_with_scan_and_separates_keys_without_ttl(
    runbook_targets: Targets, server: redis.Redis
) -> None:
    for n in range(30):
        server.set(f"survey:{n}", "x", ex=100 + n)
    server.set("survey:forever", "x")

    survey = cache.ttl_survey(runbook_targets, "survey:*")

    assert survey.sampled == 31
    assert survey.without_ttl == 1
    assert survey.min_ttl is not None
    assert 90 <= survey.min_ttl <= 100
    assert survey.median_ttl is not None


def test_hit_rate_counts_real_lookups(runbook_targets: Targets, server: redis.Redis) -> None:
    before = cache.cache_stats(runbook_targets)
    server.set("survey:0", "x", ex=60)
    for _ in range(5):
        server.get("survey:0")
    server.get("survey:absent")
    after = cache.cache_stats(runbook_targets)
    assert after.hits - before.hits >= 5
    assert after.misses - before.misses >= 1


def test_when_redis_is_down_then_cache_checks_report_crit() -> None:
    dead = "redis://127.0.0.1:1/0"
    for check in (cache.check_reachable, cache.check_hit_rate, cache.check_evictions, cache.check_memory):
        result = check(dead)
        assert result.status is Status.CRIT, check.__name__
        assert "127.0.0.1:1" in result.evidence["target"]
