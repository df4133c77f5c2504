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
#     runbook: bad-rollout
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # Bad rollout
#
# The executable half of the [Bad rollout](../docs/runbooks/bad-rollout.md) runbook.
# Diagnosis ties the errors to the skill behind the rollout flag; mitigation rolls
# the flag back to 0 %; verification waits for the errors to stop. Resume the
# rollout only through the deploy-validation runbook.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
rollout_skill = "summarise-v2"
recovery_timeout_s = 45.0

# %%
from IPython.display import display

from checks import Gate, Targets, http, load_severity, prometheus, summarize, wait_until_ok
from checks.reference_service import admin, flags, usage_log

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
policy = load_severity()
warn = policy.level("SEV3").triggers.threshold("error_ratio")
crit = policy.level("SEV2").triggers.threshold("error_ratio")

# %% tags=["diagnosis"]
# The flag and its candidate, from Prometheus: how far the flag is open, and
# how often the candidate fails compared with every other skill.
rollout = flags.check_rollout(targets, rollout_skill)
rollout

# %% tags=["diagnosis"]
# What customers see: the share of /api requests that fail.
error_ratio = prometheus.check_route_error_ratio(targets, warn=warn, crit=crit)
error_ratio

# %% tags=["diagnosis"]
# The usage log (PostgreSQL), independently: which skill fails, and why.
# `invalid_request` means the provider rejects what we send: a changed
# configuration (max tokens, model, prompt) that the candidate brought.
failing_skill = usage_log.check_failing_skill(targets, default_skill=rollout_skill)
by_type = usage_log.check_errors_by_type(targets, warn=warn, crit=crit)
display(failing_skill, by_type)

# %% tags=["diagnosis"]
# The service's own view: a bad rollout leaves it healthy, which rules out a
# dependency.
health = http.check_health(targets)
health

# %% tags=["summary"]
summary = summarize([rollout, error_ratio, failing_skill, by_type, health])
summary

# %% tags=["mitigation"]
# Roll back: the flag to 0 %, every request on the stable skill. Applied when
# the candidate fails more than the other skills while the flag sends it traffic.
rolled_back = gate.run(admin.set_rollout_percentage(targets, 0), evidence=[rollout])
rolled_back

# %% tags=["verify"]
# Wait, to a deadline, for customers' errors to fall back under the policy's
# threshold and for the candidate to receive no more traffic.
timeout_s = recovery_timeout_s if rolled_back.changed else 0
recovered = wait_until_ok(
    prometheus.check_route_error_ratio, targets, warn=warn, crit=crit, timeout_s=timeout_s
)
flag_safe = wait_until_ok(flags.check_rollout, targets, rollout_skill, timeout_s=timeout_s)
display(recovered, flag_safe)
