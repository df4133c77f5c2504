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
#     runbook: deploy-validation
#     cell_timeout_s: 180
# ---

# %% [markdown]
# # Deployment validation and staged rollout
#
# The executable half of the [Deployment validation](../docs/runbooks/deploy-validation.md)
# runbook. Diagnosis validates the environment before a rollout: configuration,
# connectivity to the database and the cache, health, and the performance gates
# (p95 under 5 s, error ratio under 2 %). The mitigation raises the rollout flag
# in stages with the same gates between steps.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
rollout_skill = "summarise-v2"
rollout_steps = [1, 5, 25]
p95_gate_s = 5.0
error_ratio_gate = 0.02
settle_s = 20.0
hold_s = 2.0

# %%
from IPython.display import display

from checks import Gate, Targets, deploy, http, postgres, prometheus, redis, summarize, wait_until_ok
from checks.reference_service import flags

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
performance = deploy.deploy_gates(p95_s=p95_gate_s, error_ratio=error_ratio_gate)

# %% tags=["diagnosis"]
# The environment: every endpoint and secret a rollout needs is declared and set.
environment = deploy.check_environment(targets)
environment

# %% tags=["diagnosis"]
# Connectivity: the database and the cache (which also holds the flag) answer.
database = postgres.check_reachable(targets)
cache = redis.check_reachable(targets)
display(database, cache)

# %% tags=["diagnosis"]
# The service's health, and the flag's candidate as it fares now.
health = http.check_health(targets)
rollout = flags.check_rollout(targets, rollout_skill)
display(health, rollout)

# %% tags=["diagnosis"]
# The performance gates, from Prometheus: p95 under p95_gate_s and the share of
# failing /api requests under error_ratio_gate. A rollout never starts on a red gate.
p95 = prometheus.check_latency_quantile(targets, warn_s=p95_gate_s, crit_s=p95_gate_s)
errors = prometheus.check_route_error_ratio(targets, warn=error_ratio_gate, crit=error_ratio_gate)
display(p95, errors)

# %% tags=["summary"]
summary = summarize([environment, database, cache, health, rollout, p95, errors])
summary

# %% tags=["mitigation"]
# The staged rollout, 1 % → 5 % → 25 %: every gate must be OK before the first
# step, become OK within settle_s after each step and stay OK for hold_s; a
# failing gate puts the flag back one step and stops. Applied when the flag is
# below its last step.
target = flags.check_rollout_target(targets, rollout_steps[-1])
staged = gate.run(
    flags.staged_rollout(
        targets,
        rollout_steps,
        gates=[http.check_health, postgres.check_reachable, redis.check_reachable, *performance],
        settle_s=settle_s,
        hold_s=hold_s,
    ),
    evidence=[target],
)
staged

# %% tags=["verify"]
# Where the flag stands now as Prometheus sees it (waiting a scrape or two after a
# rollout), and whether the candidate still holds at that share. Without a rollout
# the flag stays between stages, which is normal, not a finding.
timeout_s = settle_s if staged.changed else 0
reached = wait_until_ok(
    flags.check_rollout_target, targets, rollout_steps[-1], after_rollout=staged.changed, timeout_s=timeout_s
)
still_ok = wait_until_ok(flags.check_rollout, targets, rollout_skill, timeout_s=timeout_s)
display(reached, still_ok)
