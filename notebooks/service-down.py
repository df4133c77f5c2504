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
#     runbook: service-down
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # Service down
#
# The executable half of the [Service down](../docs/runbooks/service-down.md) runbook.
# Run it top to bottom: diagnosis first, then the summary, then mitigations
# (a dry-run plan unless `apply` is true), then verification.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
health_timeout_s = 5.0
recovery_timeout_s = 60.0
rollout_skill = "summarise-v2"

# %%
from checks import Gate, Targets, http, prometheus, restart_service, summarize, wait_until_ok
from checks.reference_service import admin, flags

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)

# %% tags=["diagnosis"]
# Ask the service itself. A healthy service answers 200 with status "ok" and
# names each dependency; no answer at all means the process is gone or hung.
health = http.check_health(targets, timeout_s=health_timeout_s)
health

# %% tags=["diagnosis"]
# Is anything listening on the service's port? "Connection refused" means the
# process is gone; no answer at all means the host or the path drops packets,
# or the process hangs. An open port with a failing health check means the
# process runs but cannot serve.
listening = http.check_listening(targets, timeout_s=health_timeout_s)
listening

# %% tags=["diagnosis"]
# Ask Prometheus whether its scrapes of the service still succeed. `up` is 0
# when the scrape fails: together with a failed health check, the process is down
# rather than unreachable from one place only.
up = prometheus.check_up(targets, "api")
up

# %% tags=["diagnosis"]
# What changed last? A candidate skill that fails while the rollout flag sends
# it traffic is a change to roll back before anything else. OK here means the
# flag is not the cause.
rollout = flags.check_rollout(targets, rollout_skill)
rollout

# %% tags=["summary"]
# The triage table and the severity the policy suggests for what was observed.
summary = summarize([health, listening, up, rollout])
summary

# %% tags=["mitigation"]
# Restart the service through the platform. It is applied only when the process
# does not listen or cannot be scraped (a failing dependency is no reason to
# restart), and only with apply=True (production also needs its confirmation).
restart = gate.run(restart_service(targets, "api"), evidence=[listening, up])
restart

# %% tags=["mitigation"]
# Roll back the last rollout: the flag to 0 %, so that no request reaches the
# candidate skill. Applied only when the rollout check above found it failing.
rollback = gate.run(admin.set_rollout_percentage(targets, 0), evidence=[rollout])
rollback

# %% tags=["verify"]
# Wait for the service to report healthy again, to a deadline. Without a
# restart this is a single check of the current state.
recovered = wait_until_ok(
    http.check_health,
    targets,
    timeout_s=recovery_timeout_s if restart.changed else 0,
    interval_s=0.5,
)
recovered
