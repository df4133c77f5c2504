"""Prometheus: instant queries and the verdicts built on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from checks._errors import ProbeError
from checks._result import CheckResult, Status
from checks._transport import session
from checks.targets import Targets

__all__ = ["Sample", "check_up", "query"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


def query(
    target: Targets | str,
    promql: str,
    *,
    timeout_s: float | None = None,
    client: httpx.Client | None = None,
) -> list[Sample]:
    """Run an instant query; raise `ProbeError` when Prometheus cannot answer it."""
    if isinstance(target, Targets):
        base = target.endpoint("prometheus")
        timeout_s = timeout_s if timeout_s is not None else target.query.timeout_seconds
    else:
        base = target
    timeout = timeout_s if timeout_s is not None else 10.0
    url = base.rstrip("/") + "/api/v1/query"
    try:
        with session(client, timeout) as http:
            response = http.get(url, params={"query": promql}, timeout=timeout)
    except httpx.TimeoutException as exc:
        raise ProbeError(f"Prometheus gave no answer within {timeout:g} s", target=url) from exc
    except httpx.TransportError as exc:
        raise ProbeError(f"cannot reach Prometheus: {type(exc).__name__}: {exc}", target=url) from exc
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        raise ProbeError(
            f"Prometheus answered HTTP {response.status_code} without JSON", target=url
        ) from None
    if body.get("status") != "success":
        raise ProbeError(
            f"Prometheus refused {promql!r}: {body.get('errorType')}: {body.get('error')}", target=url
        )
    data = body["data"]
    if data["resultType"] != "vector":
        raise ProbeError(f"{promql!r} returned a {data['resultType']}, not an instant vector", target=url)
    return [
        Sample(labels=item["metric"], value=float(item["value"][1]), timestamp=float(item["value"][0]))
        for item in data["result"]
    ]


def check_up(
    targets: Targets,
    service: str = "api",
    *,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Is every scrape target of `service`'s job up? CRIT when any is down, UNKNOWN when none exist."""
    job = targets.job(service)
    promql = f'up{{job="{job}"}}'
    try:
        samples = query(targets, promql, client=client)
    except ProbeError as exc:
        return CheckResult(
            name="up",
            status=Status.UNKNOWN,
            summary=f"could not ask Prometheus: {exc}",
            evidence={"query": promql, "error": str(exc), "prometheus": exc.target},
            remedy="Prometheus itself may be down: check it before trusting any alert.",
        )
    if not samples:
        return CheckResult(
            name="up",
            status=Status.UNKNOWN,
            summary=f"Prometheus has no scrape target for job {job!r}",
            evidence={"query": promql},
            remedy="Check the scrape configuration and service discovery of this job.",
        )
    down = [s.labels.get("instance", "?") for s in samples if s.value < 1]
    availability = 1 - len(down) / len(samples)
    evidence = {"query": promql, "targets": len(samples), "down": down}
    if down:
        return CheckResult(
            name="up",
            status=Status.CRIT,
            summary=f"{len(down)} of {len(samples)} targets of job {job!r} are down",
            evidence=evidence,
            remedy="The scrape fails: the process is down or not listening. Restart it.",
            measurements={"availability": availability},
        )
    return CheckResult(
        "up",
        Status.OK,
        f"all {len(samples)} targets of job {job!r} are up",
        evidence,
        measurements={"availability": 1.0},
    )
