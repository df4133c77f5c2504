"""Signals: every metric a check reads, named once and mapped to an environment's own names.

A check never writes a metric or label name into its PromQL: it asks for a signal
(`requests`, `request_duration`, ...) and the signal says which metric holds it, which
labels carry its roles (the status code, the route) and which Prometheus job scopes it.
The defaults follow Prometheus's naming conventions and the common exporters
(`postgres_exporter`, `redis_exporter`); an environment maps its own names under
`signals` in environments.yml, and a team with other names changes policy, never code.

A signal mapped to `null` (or one with no default, like the reference service's own) is
one the environment does not export: the checks that read it are not applicable there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from checks._errors import ConfigError

__all__ = ["DEFAULTS", "Signal", "Signals"]


@dataclass(frozen=True, slots=True)
class Signal:
    """One thing checks read from Prometheus: the metric that holds it, the labels that carry
    its roles, the label values that mean something to a check, and the service whose
    Prometheus job scopes every query of it."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    description: str
    metric: str | None
    service: str
    labels: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, str] = field(default_factory=dict)

    def label(self, role: str) -> str:
        """The label that carries `role` (e.g. `status` may be `code`)."""
        try:
            return self.labels[role]
        except KeyError:
            raise ConfigError(f"signal {self.name!r} maps no label for {role!r}") from None

    def value(self, role: str) -> str:
        """The label value that means `role` (e.g. a cache `hit`)."""
        try:
            return self.values[role]
        except KeyError:
            raise ConfigError(f"signal {self.name!r} maps no value for {role!r}") from None

    def series(self, job: str, *matchers: str) -> str:
        """`metric{job="<job>", <matchers>}`: the signal's series in one job (a histogram's
        `_bucket` series, which is what quantiles are computed from)."""
        if self.metric is None:
            raise ConfigError(f"signal {self.name!r} is not exported here: map it under signals")
        inside = ", ".join((f'job="{job}"', *matchers))
        suffix = "_bucket" if self.kind == "histogram" else ""
        return f"{self.metric}{suffix}{{{inside}}}"


#: The defaults, one per signal; `service` names the logical service whose job scopes it.
DEFAULTS: Mapping[str, Signal] = {
    s.name: s
    for s in (
        Signal(
            "requests",
            "counter",
            "HTTP requests the service answered (a counter), by status code and route",
            "http_requests_total",
            "api",
            labels={"status": "code", "route": "handler"},
        ),
        Signal(
            "request_duration",
            "histogram",
            "how long the service took to answer (a histogram: its _bucket series are read), by route",
            "http_request_duration_seconds",
            "api",
            labels={"route": "handler"},
        ),
        Signal(
            "cache_requests",
            "counter",
            "the service's own cache look-ups (a counter), by result",
            "cache_requests_total",
            "api",
            labels={"result": "result"},
            values={"hit": "hit"},
        ),
        Signal(
            "pool_connections",
            "gauge",
            "the service's database connection pool (a gauge), by state; in use is what is read",
            None,
            "api",
            labels={"state": "state"},
            values={"in_use": "in_use"},
        ),
        Signal("pool_max", "gauge", "the most connections the service's pool opens (a gauge)", None, "api"),
        Signal("pool_waiting", "gauge", "requests waiting for a pool connection (a gauge)", None, "api"),
        Signal(
            "postgres_up",
            "gauge",
            "whether the PostgreSQL exporter reaches the database (1 or 0)",
            "pg_up",
            "postgres",
        ),
        Signal(
            "redis_evictions",
            "counter",
            "keys Redis evicted for lack of memory (a counter, from the Redis exporter)",
            "redis_evicted_keys_total",
            "redis",
        ),
        Signal(
            "upstream_requests",
            "counter",
            "the reference service's calls to its upstream provider (a counter), by outcome",
            None,
            "api",
            labels={"outcome": "outcome"},
        ),
        Signal(
            "upstream_duration",
            "histogram",
            "how long the reference service's upstream calls took (a histogram)",
            None,
            "api",
        ),
        Signal(
            "circuit_breaker_state",
            "gauge",
            "the reference service's circuit breaker: 0 closed, 0.5 half-open, 1 open",
            None,
            "api",
        ),
        Signal(
            "circuit_breaker_forced",
            "gauge",
            "1 while an operator holds the reference service's circuit breaker open",
            None,
            "api",
        ),
        Signal(
            "fallback_responses",
            "counter",
            "analyses the reference service answered with its degraded fallback (a counter)",
            None,
            "api",
        ),
        Signal(
            "skill_requests",
            "counter",
            "the reference service's skill invocations (a counter), by skill and outcome",
            None,
            "api",
            labels={"skill": "skill", "outcome": "outcome"},
            values={"error": "error"},
        ),
        Signal(
            "rollout_percentage",
            "gauge",
            "the reference service's rollout flag: the share of requests sent to the candidate skill",
            None,
            "api",
        ),
        Signal(
            "llm_cost",
            "counter",
            "what the provider billed for the reference service's calls, in USD, by skill",
            None,
            "api",
            labels={"skill": "skill"},
        ),
        Signal(
            "llm_calls", "counter", "the reference service's calls to the provider, by skill", None, "api"
        ),
        Signal(
            "llm_cost_baseline",
            "gauge",
            "the historical cost of one call, in USD, by skill (the service keeps it)",
            None,
            "api",
        ),
        Signal(
            "cross_user_reads",
            "counter",
            "reads of another user's data through one API key (a counter), by key prefix",
            None,
            "api",
            labels={"key": "key_prefix"},
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Signals:
    """The signals of one environment: the defaults, with what its policy maps over them."""

    by_name: Mapping[str, Signal] = field(default_factory=lambda: dict(DEFAULTS))

    def __getitem__(self, name: str) -> Signal:
        try:
            return self.by_name[name]
        except KeyError:
            raise ConfigError(f"no signal {name!r}; signals are: {', '.join(sorted(self.by_name))}") from None

    def missing(self, *names: str) -> list[str]:
        """The signals among `names` that are not exported here."""
        return [n for n in names if self[n].metric is None]

    def lacking(self, *names: str) -> str | None:
        """None when every signal in `names` is exported here; else what to say about a check that
        reads them (the basis of its "not applicable here")."""
        missing = self.missing(*names)
        if not missing:
            return None
        listed = ", ".join(f"signal {n!r}" for n in missing)
        return f"{listed} (map {'it' if len(missing) == 1 else 'them'} under signals in environments.yml)"

    @classmethod
    def from_policy(cls, mapped: Mapping[str, Any] | None) -> Signals:
        """The defaults with an environment's `signals` mapping over them (schema-checked already)."""
        by_name = dict(DEFAULTS)
        for name, spec in (mapped or {}).items():
            if name not in by_name:
                raise ConfigError(
                    f"environments.yml maps unknown signal {name!r}; known: {', '.join(sorted(DEFAULTS))}"
                )
            if spec is None:
                by_name[name] = replace(by_name[name], metric=None)
                continue
            default = by_name[name]
            by_name[name] = replace(
                default,
                metric=spec.get("metric", default.metric),
                service=spec.get("service", default.service),
                labels={**default.labels, **spec.get("labels", {})},
                values={**default.values, **spec.get("values", {})},
            )
        return cls(by_name)
