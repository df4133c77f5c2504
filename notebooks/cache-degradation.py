# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   drillbook:
#     runbook: cache-degradation
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # Cache degradation
#
# The executable half of the [Cache degradation](../docs/runbooks/cache-degradation.md) runbook.
# Diagnosis asks Redis itself (reachability, memory, TTLs of the cache keys), the
# service (health, its hit rate as Prometheus records it) and the Redis exporter
# (evictions). Mitigations are dry-run plans unless `apply` is true; verification
# waits for the hit rate to climb back over the floor.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
hit_rate_floor = 0.30
min_ttl_s = 30.0
cache_ttl_s = 300
maxmemory_factor = 2.0
warm_top_skills = 5
recovery_timeout_s = 45.0

# %%
from checks import Gate, Targets, cache, http, prometheus, redis, restart_service, summarize, wait_until_ok
from checks.reference_service import admin, usage_log

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)

# %% tags=["diagnosis"]
# Does Redis answer at all? When it does not, every look-up is a miss and the feature
# flags fall back to their defaults.
reachable = redis.check_reachable(targets)
reachable

# %% tags=["diagnosis"]
# The service's view: health says "degraded" with redis down when it cannot reach it.
health = http.check_health(targets)
health

# %% tags=["diagnosis"]
# The hit rate the service sees over the last rate window, against the policy's 30 % floor.
hit_rate = prometheus.check_cache_hit_ratio(targets, warn_below=hit_rate_floor, crit_below=hit_rate_floor)
hit_rate

# %% tags=["diagnosis"]
# Are keys evicted for lack of memory right now? (the exporter's counter, through Prometheus)
evictions = redis.check_eviction_rate(targets)
evictions

# %% tags=["diagnosis"]
# Memory in use against maxmemory.
memory = redis.check_memory(targets)
memory

# %% tags=["diagnosis"]
# TTLs of the cache keys (SCAN, never KEYS): an empty cache or TTLs of seconds mean
# nothing lives long enough to be hit.
ttls = redis.check_ttls(targets, min_ttl_s=min_ttl_s)
ttls

# %% tags=["summary"]
summary = summarize([reachable, health, hit_rate, evictions, memory, ttls])
summary

# %% tags=["mitigation"]
# Redis down: restart it through the platform. A restarted Redis is empty: warm it below.
restart = gate.run(restart_service(targets, "redis"), evidence=[reachable])
restart

# %% tags=["mitigation"]
# Entries expire before they are reused: set the service's cache TTL back to its normal value.
ttl = gate.run(admin.set_cache_ttl(targets, cache_ttl_s), evidence=[ttls])
ttl

# %% tags=["mitigation"]
# Redis evicts: raise maxmemory (the plan shows current → new; a limit is never lowered,
# and none is set where there is none). Persist the new value in the Redis configuration after.
room = gate.run(cache.set_maxmemory(targets, factor=maxmemory_factor), evidence=[evictions, memory])
room

# %% tags=["mitigation"]
# Refill the cache for the most used skills of the last hour, instead of waiting for misses:
# after a restart, a flush, or evictions that took the entries.
skills = usage_log.most_used_skills(targets, limit=warm_top_skills, default=("summarise", "classify-ticket"))
warm = gate.run(admin.warm_cache(targets, skills), evidence=[hit_rate, ttls, evictions])
warm

# %% tags=["verify"]
# Redis answers.
reachable_ok = wait_until_ok(
    redis.check_reachable, targets, timeout_s=recovery_timeout_s if restart.changed else 0, interval_s=0.5
)
reachable_ok

# %% tags=["verify"]
# Memory in use is under the limit again once it was raised.
memory_ok = wait_until_ok(redis.check_memory, targets, timeout_s=recovery_timeout_s if room.changed else 0)
memory_ok

# %% tags=["verify"]
# No more evictions over the rate window (a restarted Redis is scraped again first).
evictions_ok = wait_until_ok(
    redis.check_eviction_rate,
    targets,
    timeout_s=recovery_timeout_s if room.changed or restart.changed else 0,
    interval_s=1.0,
)
evictions_ok

# %% tags=["verify"]
# The hit rate climbs back over the floor (it needs most of one rate window to show).
hit_rate_ok = wait_until_ok(
    prometheus.check_cache_hit_ratio,
    targets,
    warn_below=hit_rate_floor,
    crit_below=hit_rate_floor,
    timeout_s=recovery_timeout_s if warm.changed or ttl.changed or restart.changed or room.changed else 0,
    interval_s=1.0,
)
hit_rate_ok
