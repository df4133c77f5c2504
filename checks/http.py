"""HTTP probes of the service: its health endpoint."""

from __future__ import annotations

import time
from typing import Any

import httpx

from checks._result import CheckResult, Status
from checks._transport import session
from checks.targets import Targets

__all__ = ["check_health"]


def check_health(
    target: Targets | str,
    *,
    path: str = "/health",
    timeout_s: float | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Read the service's health JSON and judge it.

    OK when it answers 200 with status "ok"; WARN when it says "degraded";
    CRIT when it says "down", answers another error status, or cannot be reached
    at all (then availability is 0, which the severity policy reads).
    """
    if isinstance(target, Targets):
        base = target.endpoint("api")
        timeout_s = timeout_s if timeout_s is not None else target.query.timeout_seconds
    else:
        base = target
    url = base.rstrip("/") + path
    timeout = timeout_s if timeout_s is not None else 5.0
    started = time.perf_counter()
    try:
        with session(client, timeout) as http:
            response = http.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return _unreachable(url, f"no answer within {timeout:g} s")
    except httpx.TransportError as exc:
        return _unreachable(url, f"{type(exc).__name__}: {exc}")
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return _judge(url, response, latency_ms)


def _unreachable(url: str, error: str) -> CheckResult:
    return CheckResult(
        name="health",
        status=Status.CRIT,
        summary=f"the service is unreachable: {error}",
        evidence={"url": url, "error": error},
        remedy="Check that the process runs (platform status, `up` in Prometheus); restart it.",
        measurements={"availability": 0.0},
    )


def _judge(url: str, response: httpx.Response, latency_ms: float) -> CheckResult:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return CheckResult(
            name="health",
            status=Status.CRIT,
            summary=f"HTTP {response.status_code} without a health document",
            evidence={"url": url, "http_status": response.status_code, "body": response.text[:200]},
            remedy="The health route is broken or something else answers on this address.",
            measurements={"availability": 0.0} if response.status_code >= 500 else {},
        )
    state = str(body.get("status", "unknown"))
    dependencies = body.get("dependencies") or {}
    failing = {
        name: dep.get("error") or dep.get("status")
        for name, dep in dependencies.items()
        if isinstance(dep, dict) and dep.get("status") != "ok"
    }
    evidence: dict[str, Any] = {
        "url": url,
        "http_status": response.status_code,
        "status": state,
        "version": body.get("version"),
        "latency_ms": latency_ms,
        "dependencies": {
            name: dep.get("status") for name, dep in dependencies.items() if isinstance(dep, dict)
        },
    }
    if failing:
        evidence["failing"] = failing
    if response.status_code == 200 and state == "ok":
        return CheckResult("health", Status.OK, f"healthy (version {body.get('version')})", evidence)
    detail = ", ".join(f"{name}: {why}" for name, why in failing.items()) or "no dependency named"
    if state == "degraded":
        return CheckResult(
            "health",
            Status.WARN,
            f"degraded ({detail})",
            evidence,
            remedy="Follow the runbook of the failing dependency.",
        )
    return CheckResult(
        "health",
        Status.CRIT,
        f"HTTP {response.status_code}, status {state} ({detail})",
        evidence,
        remedy="Follow the runbook of the failing dependency; if none is named, restart the service.",
        measurements={"availability": 0.0},
    )
