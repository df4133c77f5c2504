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
#     runbook: database-down
#     cell_timeout_s: 90
# ---

# %% [markdown]
# # Database down
#
# The executable half of the [Database down](../docs/runbooks/database-down.md) runbook.
# Three observers say whether PostgreSQL answers: a session of our own, the service's
# health check, and the exporter as Prometheus scrapes it. The mitigation restarts the
# database through the platform (a dry-run plan unless `apply` is true); verification
# waits for the database, then for the service's pool to reconnect.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
recovery_timeout_s = 60.0

# %%
from checks import Gate, Targets, http, postgres, prometheus, restart_service, summarize, wait_until_ok

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)

# %% tags=["diagnosis"]
# Open a session of our own and ask the server its version and role.
# "connection refused" means no process listens; a timeout means the host or network.
database = postgres.check_reachable(targets)
database

# %% tags=["diagnosis"]
# Is the server up at all? A server that refuses us for lack of slots is full, not down:
# that is the database-connections runbook, and a restart would only drop every session.
server = postgres.check_server(targets)
server

# %% tags=["diagnosis"]
# The service's view: its health check names the database as down when its pool
# cannot run SELECT 1, and answers 503.
health = http.check_health(targets)
health

# %% tags=["diagnosis"]
# The exporter's view, through Prometheus: pg_up 0 when it cannot connect either.
exporter = postgres.check_exporter(targets)
exporter

# %% tags=["diagnosis"]
# What customers see: the share of requests answered 5xx (the severity policy reads it).
errors = prometheus.check_error_ratio(targets)
errors

# %% tags=["summary"]
summary = summarize([database, server, health, exporter, errors])
summary

# %% tags=["mitigation"]
# Restart PostgreSQL through the platform. Applied only when the server does not answer:
# if it answers, even to refuse a session, it is up and the problem is elsewhere
# (network, pool, every slot taken).
restart = gate.run(restart_service(targets, "postgres"), evidence=[server])
restart

# %% tags=["verify"]
# The database answers again, to a deadline.
database_ok = wait_until_ok(
    postgres.check_reachable, targets, timeout_s=recovery_timeout_s if restart.changed else 0, interval_s=0.5
)
database_ok

# %% tags=["verify"]
# The service's pool has reconnected: health is OK again.
service_ok = wait_until_ok(
    http.check_health, targets, timeout_s=recovery_timeout_s if restart.changed else 0, interval_s=0.5
)
service_ok
