"""Symptoms as a responder would type them, each with the runbook that must come first.

Written from the Meaning and Impact sections of the runbooks: what an on-call engineer
sees or reads in an error before knowing which runbook applies.
"""

from __future__ import annotations

SYMPTOM_QUERIES: tuple[tuple[str, str], ...] = (
    ("idle in transaction", "database-connections"),
    ("remaining connection slots are reserved", "database-connections"),
    ("sessions wait on a lock", "database-connections"),
    ("migration holds a lock", "database-connections"),
    ("health says database down", "database-down"),
    ("exporter cannot connect to postgres", "database-down"),
    ("health endpoint does not respond", "service-down"),
    ("prometheus cannot scrape the api", "service-down"),
    ("api requests answer 5xx", "high-error-rate"),
    ("failed analyses", "high-error-rate"),
    ("p95 above two seconds", "slow-responses"),
    ("answers are slow, users give up", "slow-responses"),
    ("cache hit rate low", "cache-degradation"),
    ("redis evicting keys maxmemory", "cache-degradation"),
    ("every lookup is a cache miss", "cache-degradation"),
    ("circuit breaker open, degraded fallback", "upstream-outage"),
    ("provider answers 429", "upstream-outage"),
    ("cost per call above baseline", "cost-spike"),
    ("provider budget alarm", "cost-spike"),
    ("candidate skill fails after raising the rollout flag", "bad-rollout"),
    ("summarise-v2 errors", "bad-rollout"),
    ("api key reads other users data", "security-incident"),
    ("leaked api key", "security-incident"),
    ("is it safe to raise the rollout flag", "deploy-validation"),
)
