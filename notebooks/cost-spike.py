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
#     runbook: cost-spike
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # Cost spike
#
# The executable half of the [Cost spike](../docs/runbooks/cost-spike.md) runbook.
# Diagnosis compares what one upstream call costs now with its historical baseline,
# from the service's counters (Prometheus) and from the usage log (PostgreSQL), then
# lists the most expensive skills. The mitigation caps max tokens of the offenders (a
# dry-run plan unless `apply` is true); verification waits for the cost per call to fall.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
max_tokens_headroom = 2.0
recovery_timeout_s = 45.0

# %%
from checks import Gate, Targets, http, load_severity, summarize, wait_until_ok
from checks.reference_service import costs

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
# A spike is what the severity policy calls one: its cost-against-baseline trigger.
max_cost_ratio = load_severity().level("SEV3").triggers.threshold("cost_vs_baseline")

# %% tags=["diagnosis"]
# The service itself: a cost spike rarely breaks it, but an upstream in trouble can.
health = http.check_health(targets)
health

# %% tags=["diagnosis"]
# Cost of one upstream call per skill over the rate window against its baseline
# (the policy's trigger). Per call, so that busier traffic is not a spike.
cost = costs.check_cost_per_call(targets, max_ratio=max_cost_ratio)
cost

# %% tags=["diagnosis"]
# The same from the usage log: cost and tokens per call per skill against the rows older
# than an hour, the hourly cost rate, and a suggested max-tokens cap for each offender
# (those of the usage log, and those Prometheus flagged above).
usage_cost = costs.check_usage_cost(
    targets,
    max_ratio=max_cost_ratio,
    headroom=max_tokens_headroom,
    flagged=cost.evidence.get("offenders", []),
)
usage_cost

# %% tags=["diagnosis"]
# The most expensive skills of the last hour: calls, tokens per call, cost.
top = costs.check_expensive_skills(targets)
top

# %% tags=["summary"]
summary = summarize([health, cost, usage_cost])
summary

# %% tags=["mitigation"]
# Cap max tokens of the offenders at twice their baseline output. The plan shows each
# skill's current cap and the new one; a cap that is already lower is left alone.
caps = costs.lower_max_tokens(targets, usage_cost.evidence.get("suggested_max_tokens", {}))
capped = gate.run(caps, evidence=[cost, usage_cost])
capped

# %% tags=["verify"]
# Cost per call back under the threshold over the rate window.
cost_ok = wait_until_ok(
    costs.check_cost_per_call,
    targets,
    max_ratio=max_cost_ratio,
    timeout_s=recovery_timeout_s if capped.changed else 0,
    interval_s=1.0,
)
cost_ok
