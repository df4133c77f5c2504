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
#     runbook: security-incident
#     cell_timeout_s: 60
# ---

# %% [markdown]
# # Security incident: a leaked API key
#
# The executable half of the [Security incident](../docs/runbooks/security-incident.md) runbook.
# Read the page's immediate-actions checklist first. Diagnosis reads the audit log
# (one key touching many users, new addresses) and the service's cross-user read
# counter. Containment exports the evidence into the incident record **first**, then
# revokes the key with its refresh tokens and disables its user (dry-run plans unless
# `apply` is true).

# %% tags=["parameters"]
env = "sandbox"
apply = False
confirm = ""
min_users = 5
max_cross_user_reads_per_s = 1.0
evidence_dir = "incidents/evidence"
recovery_timeout_s = 40.0

# %%
from checks import Gate, Targets, http, summarize, wait_until_ok
from checks.reference_service import admin, audit

targets = Targets.from_env(env)
gate = Gate.for_targets(targets, apply=apply, confirm=confirm)

# %% tags=["diagnosis"]
# The service answers (containment goes through its admin API).
health = http.check_health(targets)
health

# %% tags=["diagnosis"]
# Keys that touched many users' data recently, with their owner, their request rate
# against their normal rate, and the addresses they came from.
fanout = audit.check_key_fanout(targets, min_users=min_users)
fanout

# %% tags=["diagnosis"]
# Addresses that keys never used before (a WARN on its own; telling next to a fan-out).
addresses = audit.check_new_addresses(targets)
addresses

# %% tags=["diagnosis"]
# The service's own count of reads of other users' data, per key, over the rate window.
reads = audit.check_cross_user_reads(targets, max_per_s=max_cross_user_reads_per_s)
reads

# %% tags=["summary"]
summary = summarize([health, fanout, addresses, reads])
summary

# %% tags=["evidence"]
# Preserve the evidence FIRST: every audit row of the suspect key (seven days) and the
# key's record, written into the incident folder. Read-only; runs in dry runs too.
suspect_key = fanout.evidence.get("key_id", 0)
suspect_user = fanout.evidence.get("owner_user_id", 0)
exported = audit.export_evidence(targets, suspect_key, evidence_dir)
exported

# %% tags=["mitigation"]
# Revoke the key and every refresh token of its user.
revoked = gate.run(admin.revoke_api_key(targets, suspect_key), evidence=[fanout, reads])
revoked

# %% tags=["mitigation"]
# Disable the user: any other key of theirs stops working too.
disabled = gate.run(admin.disable_user(targets, suspect_user), evidence=[fanout, reads])
disabled

# %% tags=["verify"]
# No key reads other users' data any more (over one rate window).
reads_ok = wait_until_ok(
    audit.check_cross_user_reads,
    targets,
    max_per_s=max_cross_user_reads_per_s,
    timeout_s=recovery_timeout_s if revoked.changed else 0,
    interval_s=1.0,
)
reads_ok
