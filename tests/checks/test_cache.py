"""TTL survey verdicts and the maxmemory action against the sandbox's real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checks import Gate, Status, Targets, cache, redis
from checks.reference_service import usage_log

pytestmark = pytest.mark.sandbox


@pytest.fixture
def short_lived_keys(runbook_targets: Targets) -> Iterator[str]:
    conn = redis.client(runbook_targets)
    for n in range(5):
        conn.set(f"drilltest:ttl:{n}", "x", ex=5)
    conn.set("drilltest:long:0", "x", ex=3600)
    yield "drilltest:*"
    conn.delete(*[f"drilltest:ttl:{n}" for n in range(5)], "drilltest:long:0")
    conn.close()


def test_keys_that_expire_in_seconds_are_crit(runbook_targets: Targets, short_lived_keys: str) -> None:
    result = redis.check_ttls(runbook_targets, "drilltest:ttl:*", min_ttl_s=30)
    assert result.status is Status.CRIT
    assert result.evidence["sampled"] == 5
    assert redis.check_ttls(runbook_targets, "drilltest:long:*", min_ttl_s=30).status is Status.OK


def test_an_empty_pattern_is_crit_and_a_dead_redis_is_crit() -> None:
    assert redis.check_ttls("redis://127.0.0.1:1/0", "cache:*").status is Status.CRIT


def test_set_maxmemory_never_sets_a_limit_where_there_is_none(runbook_targets: Targets) -> None:
    outcome = Gate("sandbox", "apply", apply=True).run(cache.set_maxmemory(runbook_targets))
    assert "no maxmemory limit" in outcome.detail
    assert outcome.state == "held"
    assert redis.cache_stats(runbook_targets).maxmemory == 0


def test_set_maxmemory_doubles_a_limit_and_the_plan_says_current_and_new(runbook_targets: Targets) -> None:
    conn = redis.client(runbook_targets)
    limit = 512 * 2**20
    conn.config_set("maxmemory", str(limit))
    try:
        action = cache.set_maxmemory(runbook_targets, factor=2.0)
        assert "512.0 MiB → 1024.0 MiB" in action.plan().changes[0]
        outcome = Gate("sandbox", "apply", apply=True).run(action)
        assert int(conn.config_get("maxmemory")["maxmemory"]) == 2 * limit
        assert (outcome.state, outcome.before, outcome.after) == ("changed", limit, 2 * limit)
    finally:
        conn.config_set("maxmemory", "0")
        conn.close()


def test_most_used_skills_falls_back_when_the_database_is_unreachable(runbook_targets: Targets) -> None:
    assert usage_log.most_used_skills(runbook_targets, limit=2)
