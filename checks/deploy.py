"""Deploy validation: the performance gates a rollout must pass, and whether an environment
declares what a deployment needs. Generic: any service, any platform."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from checks import prometheus
from checks._result import CheckResult, Status
from checks.by_hand import Manual, by_hand, nothing_to_run
from checks.targets import Targets

__all__ = ["HealthCheck", "check_environment", "deploy_gates", "gate_name"]

#: A check of one argument, the targets: what a rollout waits on between its steps.
HealthCheck = Callable[[Targets], CheckResult]


def gate_name(gate: HealthCheck) -> str:
    inner = getattr(gate, "func", gate)
    name = str(getattr(inner, "__name__", "check"))
    keywords = getattr(gate, "keywords", {})
    return name + (f"({', '.join(f'{k}={v}' for k, v in keywords.items())})" if keywords else "")


def deploy_gates(*, p95_s: float = 5.0, error_ratio: float = 0.02) -> tuple[HealthCheck, ...]:
    """The performance gates of a rollout, as health checks of one argument (the targets):
    p95 of every request under `p95_s`, and the 5xx share of /api requests under `error_ratio`."""
    return (
        functools.partial(prometheus.check_latency_quantile, warn_s=p95_s, crit_s=p95_s),
        functools.partial(prometheus.check_route_error_ratio, warn=error_ratio, crit=error_ratio),
    )


def _environment_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    variables = [targets.secret_variables[name] for name in sorted(targets.secret_variables)]
    where = f"; the secrets' variables must be set where it runs: {', '.join(variables)}" if variables else ""
    return nothing_to_run(
        f"nothing to ask a server: this step reads the endpoints {targets.environment} declares in "
        f"policy/environments.yml{where}"
    )


@by_hand(_environment_by_hand)
def check_environment(
    targets: Targets,
    *,
    endpoints: Sequence[str] = ("api", "prometheus", "postgres", "redis"),
    secrets: Sequence[str] | None = None,
) -> CheckResult:
    """Does the environment name every endpoint and secret a deployment needs (by default, every
    secret it declares)? CRIT naming the missing ones (values are never shown)."""
    secrets = sorted({*targets.secret_variables, *targets.local_secrets}) if secrets is None else secrets
    missing = [f"endpoint {name}" for name in endpoints if not getattr(targets, name, None)]
    missing += [f"secret {name}" for name in secrets if targets.optional_secret(name) is None]
    evidence = {"environment": targets.environment, "endpoints": list(endpoints), "secrets": list(secrets)}
    if missing:
        return CheckResult(
            "environment", Status.CRIT, f"{targets.environment} lacks {', '.join(missing)}",
            {**evidence, "missing": missing},
            remedy="Declare it in policy/environments.yml, or export the secret's variable.",
        )  # fmt: skip
    return CheckResult(
        "environment", Status.OK, f"{targets.environment}: every endpoint and secret is set", evidence
    )
