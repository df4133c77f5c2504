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
#     runbook: database-connections
#     cell_timeout_s: 60
# ---

# %% [markdown]
# # Database connections exhausted or locked
#
# The executable half of the [Database connections](../docs/runbooks/database-connections.md) runbook.
# Diagnosis looks at the database from three sides: the service (health, its pool),
# Prometheus (error ratio), and PostgreSQL itself (sessions by state, idle
# transactions, long queries, lock waits). Mitigations are dry-run plans listing
# every pid they would terminate, unless `apply` is true.

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
idle_older_than_s = 60.0
long_query_warn_s = 30.0
long_query_crit_s = 300.0
recovery_timeout_s = 30.0

# %%
from checks import (
    Gate,
    Targets,
    http,
    load_severity,
    postgres,
    prometheus,
    summarize,
    terminate_blockers,
    terminate_idle_transactions,
    wait_until_ok,
)

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
# Connections in use are the policy's saturation: WARN from SEV3's trigger, CRIT from SEV2's.
policy = load_severity()
connections_warn_ratio = policy.level("SEV3").triggers.threshold("saturation")
connections_crit_ratio = policy.level("SEV2").triggers.threshold("saturation")

# %% tags=["diagnosis"]
# The service's view: does it still get a connection for its own health query?
health = http.check_health(targets)
health

# %% tags=["diagnosis"]
# What customers feel: the share of requests answered 5xx (the severity policy reads it).
errors = prometheus.check_error_ratio(targets)
errors

# %% tags=["diagnosis"]
# The service's pool, as it reports it: requests waiting for a connection mean it starves,
# even when the database still has free slots.
pool = postgres.check_service_pool(targets)
pool

# %% tags=["diagnosis"]
# The database's view: client sessions by state against max_connections.
# Many "idle in transaction" sessions point at a leak; many "active" ones at slow queries.
# With every ordinary slot taken it says "full", with who holds the slots; this step and
# the ones after it then read (and the mitigations act) through the reserved connection.
connections = postgres.check_connections(
    targets, warn_ratio=connections_warn_ratio, crit_ratio=connections_crit_ratio
)
connections

# %% tags=["diagnosis"]
# Sessions that opened a transaction and went quiet: each holds a slot and its locks.
idle = postgres.check_idle_in_transaction(targets, older_than_s=idle_older_than_s)
idle

# %% tags=["diagnosis"]
# Queries that have been running for a long time.
slow = postgres.check_long_running_queries(targets, warn_s=long_query_warn_s, crit_s=long_query_crit_s)
slow

# %% tags=["diagnosis"]
# Sessions waiting on a lock, and the pids that block them (the head of each chain).
blocked = postgres.check_blocked_queries(targets)
blocked

# %% tags=["summary"]
summary = summarize([health, errors, pool, connections, idle, slow, blocked])
summary

# %% tags=["mitigation"]
# Lock chains first: terminate only the sessions at the head of a chain (they block
# others and wait on nobody). Never this session, never replication or background workers.
unblock = gate.run(terminate_blockers(targets), evidence=[blocked])
unblock

# %% tags=["mitigation"]
# Then the leak: terminate sessions idle in a transaction for longer than the threshold.
# The plan lists every pid, its application and its last statement; the list is read
# again at apply time, so a session that finished in between is spared.
release = gate.run(terminate_idle_transactions(targets, older_than_s=idle_older_than_s), evidence=[idle])
release

# %% tags=["verify"]
# Connections back under the warning ratio, to a deadline.
connections_ok = wait_until_ok(
    postgres.check_connections,
    targets,
    warn_ratio=connections_warn_ratio,
    crit_ratio=connections_crit_ratio,
    timeout_s=recovery_timeout_s if release.changed or unblock.changed else 0,
    interval_s=0.5,
)
connections_ok

# %% tags=["verify"]
# No session waits on a lock any more.
locks_ok = wait_until_ok(
    postgres.check_blocked_queries,
    targets,
    timeout_s=recovery_timeout_s if release.changed or unblock.changed else 0,
    interval_s=0.5,
)
locks_ok

# %% tags=["verify"]
# And the service's pool no longer has requests queueing (over the rate window).
pool_ok = wait_until_ok(
    postgres.check_service_pool,
    targets,
    timeout_s=recovery_timeout_s if release.changed or unblock.changed else 0,
    interval_s=1.0,
)
pool_ok
