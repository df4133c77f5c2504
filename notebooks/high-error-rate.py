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
#     runbook: high-error-rate
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # High error rate
#
# The executable half of the [High error rate](../docs/runbooks/high-error-rate.md) runbook.
# Diagnosis finds where the errors are (route, status, error type, skill); each
# mitigation applies only to the cause its evidence shows; verification waits for
# the error ratio to fall back under the policy's threshold.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
rollout_skill = "summarise-v2"
upstream_timeout_s = 15.0
recovery_timeout_s = 45.0

# %%
from IPython.display import display

from checks import Gate, Targets, http, load_severity, prometheus, restart_service, summarize, wait_until_ok
from checks.reference_service import admin, flags, upstream, usage_log

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
# The thresholds are the severity policy's: SEV3 from its error-ratio trigger, SEV2 from its own.
policy = load_severity()
warn = policy.level("SEV3").triggers.threshold("error_ratio")
crit = policy.level("SEV2").triggers.threshold("error_ratio")

# %% tags=["diagnosis"]
# How many customer requests (/api routes) fail, from Prometheus, over the
# environment's rate window. This number decides the severity.
error_ratio = prometheus.check_route_error_ratio(targets, warn=warn, crit=crit)
error_ratio

# %% tags=["diagnosis"]
# Where the 5xx are: one route, or all of them, and which status codes.
# 500 is the service's own fault; 502/504 come from the upstream; 503 says a
# dependency (database, pool) refused.
by_route = prometheus.check_errors_by_route(targets, warn=warn, crit=crit)
by_route

# %% tags=["diagnosis"]
# The usage log (PostgreSQL) says why calls failed: errors by type, and whether
# one skill carries them. The last check counts only the service's internal errors.
by_type = usage_log.check_errors_by_type(targets, warn=warn, crit=crit)
failing_skill = usage_log.check_failing_skill(targets, default_skill=rollout_skill)
internal = usage_log.check_errors_by_type(
    targets, warn=warn, crit=crit, types=["internal_error"], name="internal-errors"
)
display(by_type, failing_skill, internal)

# %% tags=["diagnosis"]
# Two usual suspects: the candidate skill behind the rollout flag, and an upstream
# that answers slower than our timeout.
rollout = flags.check_rollout(targets, rollout_skill)
timeouts = upstream.check_upstream_timeouts(targets)
display(rollout, timeouts)

# %% tags=["diagnosis"]
# The service's own view of its dependencies.
health = http.check_health(targets)
health

# %% tags=["summary"]
summary = summarize([error_ratio, by_route, by_type, failing_skill, internal, rollout, timeouts, health])
summary

# %% tags=["mitigation"]
# One skill fails while the others answer: disable it; its callers get the plain path.
disabled = gate.run(admin.disable_skill(targets, failing_skill.evidence["skill"]), evidence=[failing_skill])
disabled

# %% tags=["mitigation"]
# The candidate behind the flag fails: send it no more traffic.
rolled_back = gate.run(admin.set_rollout_percentage(targets, 0), evidence=[rollout])
rolled_back

# %% tags=["mitigation"]
# The provider answers, but slower than we wait: give it more time.
waited = gate.run(admin.set_upstream_timeout(targets, upstream_timeout_s), evidence=[timeouts])
waited

# %% tags=["mitigation"]
# Internal errors on every skill: the process itself is at fault (a bad code path,
# a corrupted state). Restart it through the platform; if errors return, roll
# back its last deployment.
restarted = gate.run(restart_service(targets, "api"), evidence=[internal])
restarted

# %% tags=["verify"]
# Wait, to a deadline, for the error ratio to fall under the policy's threshold.
# Without a mitigation applied this is a single check of the current state.
acted = any(outcome.changed for outcome in [disabled, rolled_back, waited, restarted])
recovered = wait_until_ok(
    prometheus.check_route_error_ratio,
    targets,
    warn=warn,
    crit=crit,
    timeout_s=recovery_timeout_s if acted else 0,
    interval_s=1.0,
)
recovered
