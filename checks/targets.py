"""Targets: where an environment's service, Prometheus, database and cache are.

Endpoints come from policy/environments.yml, or, for an environment declared
with `endpoints_from: sandbox-state` (the reference sandbox) or `stock-state` (the
stock stack, `python -m sandbox --stack stock up`), from the state file that stack
writes when it starts. Secrets are never in either file: environments.yml names the
environment variable that holds each one, read here only when asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from checks._errors import ConfigError
from checks._policy import load_environments, policy_dir
from checks.signals import DEFAULTS, Signals

__all__ = [
    "CAPABILITIES",
    "REFERENCE_ADMIN",
    "REFERENCE_TABLES",
    "SETTINGS",
    "HealthContract",
    "QueryDefaults",
    "Targets",
    "known_needs",
    "sandbox_state_path",
    "stock_state_path",
]

REFERENCE_ADMIN = "reference-admin"
REFERENCE_TABLES = "reference-tables"
#: What an environment may have beyond its endpoints, declared under `capabilities`
#: (environments.schema.json lists the same names; a test keeps them equal).
CAPABILITIES: Mapping[str, str] = {
    REFERENCE_ADMIN: "the reference service's admin API: rollout, skills, circuit, cache, keys, users",
    REFERENCE_TABLES: "the reference service's usage and audit tables",
}
#: Settings of an environment that some steps need, beside its capabilities and signals.
SETTINGS: Mapping[str, str] = {
    "cache_keys": "a SCAN pattern of the service's cache keys in Redis (the TTL survey)",
    "upstream_status_page": "the upstream provider's status page (DRILLBOOK_UPSTREAM_STATUS_URL)",
    "platform.restart": "a platform command that restarts a service",
}


def known_needs() -> frozenset[str]:
    """Every name a runbook may list under `needs`: capabilities, settings and signals."""
    return frozenset({*CAPABILITIES, *SETTINGS, *DEFAULTS})


STATE_VARIABLE = "DRILLBOOK_SANDBOX_STATE"
SANDBOX_DIR_VARIABLE = "DRILLBOOK_SANDBOX_DIR"
STOCK_DIR_VARIABLE = "DRILLBOOK_STOCK_DIR"


def sandbox_state_path() -> Path:
    """$DRILLBOOK_SANDBOX_STATE, else state.json in $DRILLBOOK_SANDBOX_DIR or in .sandbox/."""
    if path := os.environ.get(STATE_VARIABLE):
        return Path(path)
    if folder := os.environ.get(SANDBOX_DIR_VARIABLE):
        return Path(folder) / "state.json"
    return policy_dir().parent / ".sandbox" / "state.json"


def stock_state_path() -> Path:
    """state.json in $DRILLBOOK_STOCK_DIR, else in .sandbox-stock/: the stock stack's state."""
    if folder := os.environ.get(STOCK_DIR_VARIABLE):
        return Path(folder) / "state.json"
    return policy_dir().parent / ".sandbox-stock" / "state.json"


# endpoints_from -> (where that state file is, the command that writes it)
STATE_SOURCES = {
    "sandbox-state": (sandbox_state_path, "python -m sandbox up"),
    "stock-state": (stock_state_path, "python -m sandbox --stack stock up"),
}


@dataclass(frozen=True, slots=True)
class QueryDefaults:
    """Per-environment query settings: a rate window that fits the scrape interval, a timeout, and
    how old the newest sample of a window may be before the window counts as the past (a few
    scrape intervals)."""

    rate_window: str = "5m"
    timeout_seconds: float = 10.0
    max_sample_age_seconds: float = 120.0


@dataclass(frozen=True, slots=True)
class HealthContract:
    """Where an environment's service reports its health, and the words it uses beyond the common
    ones (`checks.http` knows the IETF draft's, Spring Boot's and the ok/healthy/degraded family)."""

    path: str = "/health"
    ok: tuple[str, ...] = ()
    warn: tuple[str, ...] = ()
    crit: tuple[str, ...] = ()

    @classmethod
    def from_policy(cls, spec: Mapping[str, Any]) -> HealthContract:
        words = {band: tuple(spec.get(band, ())) for band in ("ok", "warn", "crit")}
        return cls(path=spec.get("path", "/health"), **words)


@dataclass(frozen=True, slots=True)
class Targets:
    """The endpoints of one environment and how to act on it."""

    environment: str
    gate: Literal["apply", "confirm"]
    api: str | None = None
    prometheus: str | None = None
    postgres: str | None = None
    redis: str | None = None
    services: Mapping[str, str] = field(default_factory=dict)
    prometheus_jobs: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    secret_variables: Mapping[str, str] = field(default_factory=dict)
    query: QueryDefaults = field(default_factory=QueryDefaults)
    health: HealthContract = field(default_factory=HealthContract)
    signals: Signals = field(default_factory=Signals)
    # What the environment has beyond endpoints, such as the reference service's admin API
    # (`reference-admin`) or its tables (`reference-tables`); a step that needs one it lacks
    # is not applicable here.
    capabilities: frozenset[str] = frozenset()
    # A SCAN pattern of the service's cache keys in Redis (the TTL survey reads them).
    cache_keys: str | None = None
    # Secrets a throwaway sandbox generated at start-up; never printed.
    local_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(
        cls, env: str = "sandbox", *, environments: Path | None = None, declared_only: bool = False
    ) -> Targets:
        """The targets of environment `env` as policy/environments.yml (or `environments`) declares.

        `declared_only` reads the policy alone: an environment that takes its endpoints from a
        state file (a sandbox) then has none, and no stack need run (the site shows its names).
        """
        declared = load_environments(environments)
        if env not in declared:
            raise ConfigError(f"unknown environment {env!r}; environments.yml declares {', '.join(declared)}")
        spec: dict[str, Any] = declared[env]
        endpoints: Mapping[str, str] = spec.get("endpoints", {})
        jobs = dict(spec.get("prometheus_jobs", {}))
        platform = {k: tuple(v) for k, v in spec.get("platform", {}).items()}
        local_secrets: dict[str, str] = {}
        if (source := spec.get("endpoints_from")) is not None and not declared_only:
            path_of, start = STATE_SOURCES[source]
            state = _read_state(path_of(), start=start)
            endpoints = state["endpoints"]
            local_secrets = dict(state.get("secrets", {}))
            jobs = {**state.get("prometheus_jobs", {}), **jobs}
            platform = {**{k: tuple(v) for k, v in state.get("platform", {}).items()}, **platform}
        return cls(
            environment=env,
            gate=spec["gate"],
            api=endpoints.get("api"),
            prometheus=endpoints.get("prometheus"),
            postgres=endpoints.get("postgres"),
            redis=endpoints.get("redis"),
            services=dict(spec.get("services", {})),
            prometheus_jobs=jobs,
            platform=platform,
            secret_variables=dict(spec.get("secrets", {})),
            query=QueryDefaults(**spec.get("query_defaults", {})),
            health=HealthContract.from_policy(spec.get("health", {})),
            capabilities=frozenset(spec.get("capabilities", ())),
            cache_keys=spec.get("cache_keys"),
            signals=Signals.from_policy(spec.get("signals")),
            local_secrets=local_secrets,
        )

    def endpoint(self, name: Literal["api", "prometheus", "postgres", "redis"]) -> str:
        """The endpoint `name`, or a ConfigError saying which environment lacks it."""
        value: str | None = getattr(self, name)
        if not value:
            raise ConfigError(f"environment {self.environment!r} declares no {name} endpoint")
        return value

    def lacks(self, capability: str) -> str | None:
        """None when the environment has `capability`; else what to say about the step that needs it."""
        if capability in self.capabilities:
            return None
        return f"{capability!r} (declare it under capabilities of {self.environment!r} in environments.yml)"

    def service_name(self, service: str) -> str:
        """The platform's name for a logical service (`api` may be `reference-api` in a cluster)."""
        return self.services.get(service, service)

    def job(self, service: str) -> str:
        """The Prometheus job that scrapes a logical service."""
        return self.prometheus_jobs.get(service, service)

    def secret(self, name: str) -> str:
        """The value of secret `name`, from the environment variable environments.yml names.

        A sandbox's own generated secrets are the fallback when no variable is set.
        """
        value = self.optional_secret(name)
        if value is None:
            variable = self.secret_variables.get(name)
            if variable is None:
                raise ConfigError(
                    f"environment {self.environment!r} declares no secret {name!r}: "
                    "add it under secrets in environments.yml"
                )
            raise ConfigError(
                f"secret {name!r} of environment {self.environment!r} is not set: export {variable}"
            )
        return value

    def optional_secret(self, name: str) -> str | None:
        """Like `secret`, but None when the secret is not declared or not set."""
        variable = self.secret_variables.get(name)
        if variable and (value := os.environ.get(variable)):
            return value
        return self.local_secrets.get(name)

    def secret_values(self) -> list[str]:
        """Every secret of this environment that is set, for redaction."""
        from_env = [v for var in self.secret_variables.values() if (v := os.environ.get(var))]
        return [*from_env, *self.local_secrets.values()]


def _read_state(path: Path, *, start: str) -> dict[str, Any]:
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"the sandbox is not running: no state file at {path}. Hint: start it with `{start}`."
        ) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable sandbox state ({exc}); restart the sandbox") from exc
    if not isinstance(state.get("endpoints"), dict):
        raise ConfigError(f"{path}: the sandbox state has no `endpoints` mapping; restart the sandbox")
    return state
