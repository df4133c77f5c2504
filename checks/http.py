"""HTTP probes of the service: its health endpoint."""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from checks._errors import ProbeError
from checks._result import CheckResult, Status
from checks._transport import session
from checks.targets import Targets

__all__ = [
    "LatencySample",
    "StatusPage",
    "check_health",
    "check_latency",
    "check_listening",
    "check_status_page",
    "latency_sample",
    "status_page",
]


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


@dataclass(frozen=True, slots=True)
class LatencySample:
    """Timings of N sequential requests to one URL."""

    url: str
    seconds: tuple[float, ...]
    errors: Mapping[str, int]

    @property
    def requests(self) -> int:
        return len(self.seconds) + sum(self.errors.values())

    def quantile(self, q: float) -> float | None:
        """The `q` quantile of successful requests (inclusive method), None when none succeeded."""
        if not self.seconds:
            return None
        if len(self.seconds) == 1:
            return self.seconds[0]
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[round(q * 100) - 1]


def latency_sample(
    target: Targets | str,
    *,
    path: str = "/health",
    requests: int = 20,
    timeout_s: float = 10.0,
    client: httpx.Client | None = None,
) -> LatencySample:
    """Time `requests` sequential GETs of `path`; failures are counted by kind, not raised."""
    base = target.endpoint("api") if isinstance(target, Targets) else target
    url = base.rstrip("/") + path
    seconds: list[float] = []
    errors: dict[str, int] = {}
    with session(client, timeout_s) as http:
        for _ in range(requests):
            started = time.perf_counter()
            try:
                response = http.get(url, timeout=timeout_s)
            except httpx.TimeoutException:
                errors["timeout"] = errors.get("timeout", 0) + 1
                continue
            except httpx.TransportError as exc:
                kind = type(exc).__name__
                errors[kind] = errors.get(kind, 0) + 1
                continue
            if response.status_code >= 500:
                errors[f"http {response.status_code}"] = errors.get(f"http {response.status_code}", 0) + 1
                continue
            seconds.append(time.perf_counter() - started)
    return LatencySample(url=url, seconds=tuple(seconds), errors=errors)


def check_latency(
    target: Targets | str,
    *,
    path: str = "/health",
    requests: int = 20,
    warn_s: float = 2.0,
    crit_s: float = 7.0,
    timeout_s: float = 10.0,
    client: httpx.Client | None = None,
) -> CheckResult:
    """p95 of a fresh sample of requests, seen from here: WARN from `warn_s`, CRIT from `crit_s`."""
    sample = latency_sample(target, path=path, requests=requests, timeout_s=timeout_s, client=client)
    failed = sum(sample.errors.values())
    p50, p95 = sample.quantile(0.5), sample.quantile(0.95)
    evidence: dict[str, Any] = {"url": sample.url, "requests": sample.requests, "errors": dict(sample.errors)}
    if p95 is None or p50 is None:
        return CheckResult(
            "latency-sample",
            Status.CRIT,
            f"all {sample.requests} requests failed",
            evidence,
            measurements={"availability": 0.0},
        )
    evidence |= {"p50_s": round(p50, 3), "p95_s": round(p95, 3)}
    status = Status.CRIT if p95 >= crit_s else Status.WARN if p95 >= warn_s or failed else Status.OK
    summary = f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms over {sample.requests} requests"
    if failed:
        summary += f", {failed} failed"
    return CheckResult(
        "latency-sample",
        status,
        summary,
        evidence,
        measurements={"p95_latency_seconds": p95, "error_ratio": failed / sample.requests},
    )


@dataclass(frozen=True, slots=True)
class StatusPage:
    """A provider's status page in the common status-page JSON format."""

    url: str
    indicator: str
    description: str
    components: Mapping[str, str]


def status_page(url: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None) -> StatusPage:
    """Read `<url>/api/v2/status.json` or `summary.json` (whichever `url` names)."""
    try:
        with session(client, timeout_s) as http:
            response = http.get(url, timeout=timeout_s)
            response.raise_for_status()
            body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProbeError(f"cannot read the status page: {type(exc).__name__}: {exc}", target=url) from exc
    status = body.get("status") or {}
    components = {c["name"]: c.get("status", "unknown") for c in body.get("components", []) if "name" in c}
    return StatusPage(
        url=url,
        indicator=str(status.get("indicator", "unknown")),
        description=str(status.get("description", "")),
        components=components,
    )


def check_status_page(
    url: str, *, timeout_s: float = 10.0, client: httpx.Client | None = None
) -> CheckResult:
    """What the provider says about itself: none → OK, minor → WARN, major/critical → CRIT."""
    try:
        page = status_page(url, timeout_s=timeout_s, client=client)
    except ProbeError as exc:
        return CheckResult(
            "status-page",
            Status.UNKNOWN,
            str(exc),
            {"url": url},
            remedy="The provider's status page is unreachable too: treat the provider as suspect.",
        )
    degraded = {name: state for name, state in page.components.items() if state != "operational"}
    evidence = {"url": url, "indicator": page.indicator, "degraded_components": degraded}
    status = {"none": Status.OK, "minor": Status.WARN}.get(page.indicator, Status.CRIT)
    return CheckResult("status-page", status, f"{page.indicator}: {page.description}", evidence)


def check_listening(target: Targets | str, *, timeout_s: float = 3.0) -> CheckResult:
    """Does anything accept TCP connections on the service's address? Tells a process that is gone
    (connection refused: nothing listens) from one that hangs or a path that drops (no answer)."""
    base = target.endpoint("api") if isinstance(target, Targets) else target
    url = httpx.URL(base)
    host = url.host or "localhost"
    port = url.port or (443 if url.scheme == "https" else 80)
    where = f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except TimeoutError:
        return CheckResult(
            "listening",
            Status.CRIT,
            f"{where} did not accept a connection within {timeout_s:g} s: the host or the path drops it",
            {"address": where, "error": "timeout"},
            remedy="Check the network path and the host; a hung process may also stop accepting.",
            measurements={"availability": 0.0},
        )
    except OSError as exc:
        return CheckResult(
            "listening",
            Status.CRIT,
            f"nothing accepts connections on {where}: {exc.strerror or type(exc).__name__}",
            {"address": where, "error": f"{type(exc).__name__}: {exc}"},
            remedy="The process is not running (or not bound to its port): restart it through the platform.",
            measurements={"availability": 0.0},
        )
    return CheckResult("listening", Status.OK, f"{where} accepts connections", {"address": where})
