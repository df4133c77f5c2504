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
#     runbook: slow-responses
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # Slow responses
#
# The executable half of the [Slow responses](../docs/runbooks/slow-responses.md) runbook.
# Diagnosis finds where the time goes (routes, skills, cache, provider, the
# service itself); each mitigation applies only to the cause its evidence shows;
# verification waits for p95 to fall back under the policy's threshold.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
warm_skills = ["summarise", "classify-ticket", "contract-review", "extract-entities"]
slow_skill_max_tokens = 1000
recovery_timeout_s = 45.0

# %%
from IPython.display import display

from checks import Gate, Targets, http, load_severity, prometheus, restart_service, summarize, wait_until_ok
from checks.reference_service import admin, upstream, usage_log

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
# The thresholds are the severity policy's p95 triggers: WARN from SEV4's, CRIT from SEV3's
# (where the SlowResponses alert fires); SEV2 and SEV1 follow from the summary.
policy = load_severity()
warn_s = policy.level("SEV4").triggers.threshold("p95_latency_seconds")
crit_s = policy.level("SEV3").triggers.threshold("p95_latency_seconds")

# %% tags=["diagnosis"]
# How slow, from Prometheus: p95 of every request, then the slowest routes.
# One slow route points at its handler or its dependency; all routes at the service.
p95 = prometheus.check_latency_quantile(targets, warn_s=warn_s, crit_s=crit_s)
routes = prometheus.check_slowest_routes(targets, warn_s=warn_s, crit_s=crit_s)
display(p95, routes)

# %% tags=["diagnosis"]
# Where the time goes: the provider's share of it (Prometheus), and whether one
# skill is much slower than the others (the usage log in PostgreSQL).
source = upstream.check_latency_source(targets, warn_s=warn_s, crit_s=crit_s)
provider = upstream.check_upstream_latency(targets, warn_s=warn_s, crit_s=crit_s)
slow_skill = usage_log.check_slow_skill(targets, crit_ms=crit_s * 1000, default_skill=warm_skills[0])
display(source, provider, slow_skill)

# %% tags=["diagnosis"]
# A cold cache sends every analysis to the provider: the hit ratio over the window.
cache = prometheus.check_cache_hit_ratio(targets)
cache

# %% tags=["diagnosis"]
# The service's own view of its dependencies (a slow database shows here too).
health = http.check_health(targets)
health

# %% tags=["summary"]
summary = summarize([p95, routes, source, provider, slow_skill, cache, health])
summary

# %% tags=["mitigation"]
# The cache is cold: fill it for the most used skills instead of waiting for misses.
warmed = gate.run(admin.warm_cache(targets, warm_skills), evidence=[cache])
warmed

# %% tags=["mitigation"]
# One skill is much slower than the others: cap its answers' length.
capped = gate.run(
    admin.set_max_tokens(targets, slow_skill.evidence["skill"], slow_skill_max_tokens), evidence=[slow_skill]
)
capped

# %% tags=["mitigation"]
# The provider is the slow part: hold the circuit open so the fallback answers at once.
# Release it (upstream-outage runbook, recovery) when the provider is fast again.
bypassed = gate.run(admin.open_circuit_breaker(targets), evidence=[provider])
bypassed

# %% tags=["mitigation"]
# Every route is slow and the provider is not the cause: the time is spent inside
# the service. Restart it through the platform; if it stays slow, roll back its
# last deployment and look at its host and its database.
restarted = gate.run(restart_service(targets, "api"), evidence=[source])
restarted

# %% tags=["verify"]
# Wait, to a deadline, for p95 to fall back under the policy's lowest trigger.
acted = any(outcome.changed for outcome in [warmed, capped, bypassed, restarted])
recovered = wait_until_ok(
    prometheus.check_latency_quantile,
    targets,
    warn_s=warn_s,
    crit_s=crit_s,
    timeout_s=recovery_timeout_s if acted else 0,
    interval_s=1.0,
)
recovered
