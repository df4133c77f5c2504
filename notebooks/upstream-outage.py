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
#     runbook: upstream-outage
#     cell_timeout_s: 120
# ---

# %% [markdown]
# # Upstream outage
#
# The executable half of the [Upstream outage](../docs/runbooks/upstream-outage.md) runbook.
# Diagnosis asks the provider, our metrics of calls to it, the circuit breaker and
# the usage log; mitigation holds the circuit open so the fallback answers and
# turns the skills rollout off; once the provider is back, run it again with
# `reenable=True` to release the circuit and resume the rollout in stages.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
reenable = False
status_page_url = ""
rollout_steps = [1, 5, 25]
settle_s = 20.0
hold_s = 2.0
recovery_timeout_s = 40.0

# %%
from IPython.display import display

from checks import Gate, Targets, http, prometheus, summarize, wait_until_ok
from checks.reference_service import admin, flags, upstream, usage_log

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
# Re-enabling is a decision of its own, taken once the provider is healthy again.
reenable_gate = Gate.for_targets(targets, apply=apply and reenable, confirm=confirm)

# %% tags=["diagnosis"]
# What the provider says about itself. "major" or "critical" confirms an outage
# on their side; "none" while our calls fail points at our side (credentials,
# network, quota) or at an outage they have not posted yet.
status_page = upstream.check_status_page(targets, url=status_page_url or None)
status_page

# %% tags=["diagnosis"]
# How our calls to the provider fare, from Prometheus: failures (5xx, connection
# errors, time-outs) and 429 answers, each as a share of all calls in the window.
failing = upstream.check_upstream_errors(targets)
limited = upstream.check_rate_limited(targets)
display(failing, limited)

# %% tags=["diagnosis"]
# The circuit breaker opens on its own after consecutive failures; the fallback
# share says how many analyses customers get in degraded form.
breaker = upstream.check_circuit_breaker(targets)
fallback = upstream.check_fallback_share(targets)
display(breaker, fallback)

# %% tags=["diagnosis"]
# The usage log (PostgreSQL), independently of Prometheus: calls that failed
# because of the provider, by error type.
provider_failures = usage_log.check_errors_by_type(
    targets,
    types=["upstream_error", "upstream_timeout", "circuit_open", "rate_limited"],
    name="provider-failures",
)
provider_failures

# %% tags=["diagnosis"]
# The service's own view: "down" while it still sends requests to a dead
# provider, "degraded" once the circuit is open and the fallback answers.
health = http.check_health(targets)
health

# %% tags=["summary"]
summary = summarize([status_page, failing, limited, breaker, fallback, provider_failures, health])
summary

# %% tags=["mitigation"]
# Hold the circuit open: every analysis takes the degraded fallback at once
# instead of waiting for the provider to fail. Applied when calls fail or are
# rate-limited (a breaker that opens on its own still lets probes through, and
# they fail too).
opened = gate.run(admin.open_circuit_breaker(targets), evidence=[failing, limited])
opened

# %% tags=["mitigation"]
# Send no traffic to the skills behind the rollout flag until the provider is back.
rollout_off = gate.run(admin.set_rollout_percentage(targets, 0), evidence=[failing, limited])
rollout_off

# %% tags=["verify"]
# Wait, to a deadline, until no call to the provider fails or is refused any more
# and customers' requests succeed (served by the fallback).
acted = opened.changed or rollout_off.changed
timeout_s = recovery_timeout_s if acted else 0
calls_ok = wait_until_ok(upstream.check_upstream_errors, targets, timeout_s=timeout_s)
quota_ok = wait_until_ok(upstream.check_rate_limited, targets, timeout_s=timeout_s)
served = wait_until_ok(prometheus.check_route_error_ratio, targets, timeout_s=timeout_s)
display(calls_ok, quota_ok, served)

# %% tags=["recovery"]
# Once the status page says the provider is operational again (run with
# reenable=True): release the circuit to its automatic behaviour.
released = reenable_gate.run(admin.close_circuit_breaker(targets), evidence=[breaker])
released

# %% tags=["recovery"]
# Then resume the rollout in stages, 1 % → 5 % → 25 %: after each step the
# service's health and the provider's error and 429 shares must be OK within
# settle_s and stay OK for hold_s, or the flag goes back one step and stops.
target = flags.check_rollout_target(targets, rollout_steps[-1])
resumed = reenable_gate.run(
    flags.staged_rollout(
        targets,
        rollout_steps,
        gates=[http.check_health, upstream.check_upstream_errors, upstream.check_rate_limited],
        settle_s=settle_s,
        hold_s=hold_s,
    ),
    evidence=[target],
)
resumed
