"""Prometheus: instant queries and the verdicts built on them."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from checks._errors import ProbeError
from checks._result import CheckResult, Status
from checks._transport import session
from checks.targets import Targets

__all__ = [
    "Alert",
    "RouteErrors",
    "Sample",
    "check_cache_hit_ratio",
    "check_error_ratio",
    "check_errors_by_route",
    "check_firing_alerts",
    "check_latency_quantile",
    "check_route_error_ratio",
    "check_slowest_routes",
    "check_up",
    "error_ratio",
    "errors_by_route",
    "firing_alerts",
    "latency_quantile",
    "query",
    "query_range",
    "scalar",
    "slowest_routes",
]


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Mapping[str, str]
    value: float
    timestamp: float


def _api(
    target: Targets | str,
    path: str,
    params: dict[str, str],
    *,
    timeout_s: float | None,
    client: httpx.Client | None,
) -> Any:
    """GET a Prometheus API path; the `data` of a successful answer, else `ProbeError`."""
    if isinstance(target, Targets):
        base = target.endpoint("prometheus")
        timeout_s = timeout_s if timeout_s is not None else target.query.timeout_seconds
    else:
        base = target
    timeout = timeout_s if timeout_s is not None else 10.0
    url = base.rstrip("/") + path
    try:
        with session(client, timeout) as http:
            response = http.get(url, params=params, timeout=timeout)
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
        what = params.get("query", path)
        raise ProbeError(
            f"Prometheus refused {what!r}: {body.get('errorType')}: {body.get('error')}", target=url
        )
    return body["data"]


def query(
    target: Targets | str,
    promql: str,
    *,
    timeout_s: float | None = None,
    client: httpx.Client | None = None,
) -> list[Sample]:
    """Run an instant query; raise `ProbeError` when Prometheus cannot answer it."""
    data = _api(target, "/api/v1/query", {"query": promql}, timeout_s=timeout_s, client=client)
    if data["resultType"] == "scalar":
        return [Sample(labels={}, value=float(data["result"][1]), timestamp=float(data["result"][0]))]
    if data["resultType"] != "vector":
        raise ProbeError(f"{promql!r} returned a {data['resultType']}, not an instant vector", target=promql)
    return [
        Sample(labels=item["metric"], value=float(item["value"][1]), timestamp=float(item["value"][0]))
        for item in data["result"]
    ]


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range query: its labels and (timestamp, value) points."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def query_range(
    target: Targets | str,
    promql: str,
    *,
    duration: timedelta,
    step_s: float,
    timeout_s: float | None = None,
    client: httpx.Client | None = None,
) -> list[Series]:
    """Run a range query over the last `duration` with one point every `step_s` seconds."""
    end = time.time()
    params = {"query": promql, "start": f"{end - duration.total_seconds():.3f}", "end": f"{end:.3f}"}
    params["step"] = f"{step_s:g}"
    data = _api(target, "/api/v1/query_range", params, timeout_s=timeout_s, client=client)
    return [
        Series(labels=item["metric"], points=tuple((float(t), float(v)) for t, v in item["values"]))
        for item in data["result"]
    ]


def scalar(target: Targets | str, promql: str, *, client: httpx.Client | None = None) -> float | None:
    """The single value of a query that yields one sample; None when it yields none or NaN."""
    samples = query(target, promql, client=client)
    if not samples:
        return None
    if len(samples) > 1:
        raise ProbeError(f"{promql!r} returned {len(samples)} series; aggregate it to one", target=promql)
    value = samples[0].value
    return None if math.isnan(value) else value


def _window(targets: Targets, window: str | None) -> str:
    return window or targets.query.rate_window


def error_ratio(
    targets: Targets, service: str = "api", *, window: str | None = None, client: httpx.Client | None = None
) -> float | None:
    """Share of the service's requests answered 5xx over the rate window; None without traffic."""
    job, w = targets.job(service), _window(targets, window)
    promql = (
        f'sum(rate(http_requests_total{{job="{job}",status=~"5.."}}[{w}]))'
        f' / sum(rate(http_requests_total{{job="{job}"}}[{w}]))'
    )
    errors = scalar(targets, promql, client=client)
    if errors is None:
        # No 5xx series at all yields an empty vector: zero errors if there is traffic.
        traffic = scalar(targets, f'sum(rate(http_requests_total{{job="{job}"}}[{w}]))', client=client)
        return 0.0 if traffic else None
    return errors


def latency_quantile(
    targets: Targets,
    service: str = "api",
    *,
    quantile: float = 0.95,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> float | None:
    """The `quantile` of request duration in seconds over the rate window; None without traffic."""
    job, w = targets.job(service), _window(targets, window)
    promql = (
        f"histogram_quantile({quantile:g}, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{job="{job}"}}[{w}])))'
    )
    return scalar(targets, promql, client=client)


def check_error_ratio(
    targets: Targets,
    service: str = "api",
    *,
    warn: float = 0.02,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The 5xx share over the window: WARN from `warn`, CRIT from `crit`."""
    try:
        ratio = error_ratio(targets, service, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask("error-ratio", exc)
    w = _window(targets, window)
    if ratio is None:
        return CheckResult("error-ratio", Status.UNKNOWN, f"no requests in the last {w}: nothing to judge")
    return _error_ratio_verdict(ratio, "requests", {"window": w, "warn": warn, "crit": crit}, warn, crit)


def _error_ratio_verdict(
    ratio: float, what: str, evidence: dict[str, Any], warn: float, crit: float
) -> CheckResult:
    """The one verdict on a 5xx share, whichever requests it was measured over."""
    status = Status.CRIT if ratio >= crit else Status.WARN if ratio >= warn else Status.OK
    return CheckResult(
        "error-ratio",
        status,
        f"{ratio:.1%} of {what} failed over the last {evidence['window']}",
        {"error_ratio": round(ratio, 4), **evidence},
        remedy="Break the errors down by route, status and error type to find the failing part.",
        measurements={"error_ratio": ratio},
    )


def check_latency_quantile(
    targets: Targets,
    service: str = "api",
    *,
    quantile: float = 0.95,
    warn_s: float = 2.0,
    crit_s: float = 7.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """A latency quantile over the window: WARN from `warn_s`, CRIT from `crit_s` seconds."""
    name = f"p{quantile * 100:g}-latency"
    try:
        seconds = latency_quantile(targets, service, quantile=quantile, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask(name, exc)
    w = _window(targets, window)
    if seconds is None:
        return CheckResult(name, Status.UNKNOWN, f"no requests in the last {w}: nothing to judge")
    status = Status.CRIT if seconds >= crit_s else Status.WARN if seconds >= warn_s else Status.OK
    measurements = {"p95_latency_seconds": seconds} if quantile == 0.95 else {}
    return CheckResult(
        name,
        status,
        f"p{quantile * 100:g} latency {seconds:.2f} s over the last {w}",
        {"seconds": round(seconds, 3), "window": w, "warn_s": warn_s, "crit_s": crit_s},
        remedy="Find the slow part: routes, upstream latency, database time, cache hit rate.",
        measurements=measurements,
    )


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert as Prometheus reports it."""

    name: str
    state: str
    severity: str | None
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    active_at: str | None


def firing_alerts(
    target: Targets | str, *, client: httpx.Client | None = None, include_pending: bool = False
) -> list[Alert]:
    """Alerts Prometheus currently has firing (and pending, when asked)."""
    data = _api(target, "/api/v1/alerts", {}, timeout_s=None, client=client)
    states = {"firing", "pending"} if include_pending else {"firing"}
    return [
        Alert(
            name=a["labels"].get("alertname", "?"),
            state=a["state"],
            severity=a["labels"].get("severity"),
            labels=a["labels"],
            annotations=a.get("annotations", {}),
            active_at=a.get("activeAt"),
        )
        for a in data["alerts"]
        if a["state"] in states
    ]


def check_firing_alerts(
    targets: Targets, *, names: Sequence[str] | None = None, client: httpx.Client | None = None
) -> CheckResult:
    """Alerts firing now (only `names` when given): CRIT when any fires, with its runbook link."""
    try:
        alerts = firing_alerts(targets, client=client)
    except ProbeError as exc:
        return _cannot_ask("firing-alerts", exc)
    if names is not None:
        alerts = [a for a in alerts if a.name in names]
    scope = f" among {', '.join(names)}" if names else ""
    if not alerts:
        return CheckResult("firing-alerts", Status.OK, f"no alert firing{scope}")
    evidence = {
        "alerts": [
            {
                "name": a.name,
                "severity": a.severity,
                "since": a.active_at,
                "runbook": a.annotations.get("runbook_url"),
            }
            for a in alerts
        ]
    }
    listed = ", ".join(sorted({a.name for a in alerts}))
    return CheckResult("firing-alerts", Status.CRIT, f"firing: {listed}", evidence)


def _cannot_ask(
    name: str,
    exc: ProbeError,
    remedy: str = "Prometheus itself may be down: check it before trusting any alert.",
) -> CheckResult:
    """The verdict of a check whose question to Prometheus went unanswered: UNKNOWN, with the error."""
    return CheckResult(
        name,
        Status.UNKNOWN,
        f"could not ask Prometheus: {exc}",
        {"error": str(exc), "prometheus": exc.target},
        remedy=remedy,
    )


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
        return _cannot_ask("up", exc)
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


# --------------------------------------------------------------------------- breakdowns by route


@dataclass(frozen=True, slots=True)
class RouteErrors:
    """One route's requests per second over the window, and its 5xx by status code."""

    route: str
    requests_per_s: float
    errors_per_s: Mapping[str, float]

    @property
    def error_ratio(self) -> float:
        return sum(self.errors_per_s.values()) / self.requests_per_s if self.requests_per_s else 0.0


def errors_by_route(
    targets: Targets, service: str = "api", *, window: str | None = None, client: httpx.Client | None = None
) -> list[RouteErrors]:
    """Requests and 5xx per route over the rate window, worst error ratio first."""
    job, w = targets.job(service), _window(targets, window)
    totals = query(targets, f'sum by (route) (rate(http_requests_total{{job="{job}"}}[{w}]))', client=client)
    errors = query(
        targets,
        f'sum by (route, status) (rate(http_requests_total{{job="{job}",status=~"5.."}}[{w}]))',
        client=client,
    )
    by_route: dict[str, dict[str, float]] = {}
    for sample in errors:
        if sample.value > 0:
            route = sample.labels.get("route", "?")
            by_route.setdefault(route, {})[sample.labels.get("status", "?")] = sample.value
    routes = [
        RouteErrors(s.labels.get("route", "?"), s.value, by_route.get(s.labels.get("route", "?"), {}))
        for s in totals
        if s.value > 0
    ]
    return sorted(routes, key=lambda r: (-r.error_ratio, r.route))


def check_errors_by_route(
    targets: Targets,
    service: str = "api",
    *,
    warn: float = 0.05,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Where the 5xx are: the worst route's error ratio judges (WARN from `warn`, CRIT from `crit`),
    and the evidence lists every failing route with its status codes."""
    try:
        routes = errors_by_route(targets, service, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask("errors-by-route", exc)
    w = _window(targets, window)
    if not routes:
        return CheckResult(
            "errors-by-route", Status.UNKNOWN, f"no requests in the last {w}: nothing to judge"
        )
    failing = [r for r in routes if r.errors_per_s]
    evidence = {
        "window": w,
        "routes": {
            r.route: {
                "error_ratio": round(r.error_ratio, 4),
                "statuses": {k: round(v, 3) for k, v in sorted(r.errors_per_s.items())},
            }
            for r in failing
        },
    }
    if not failing:
        return CheckResult("errors-by-route", Status.OK, f"no route answered 5xx over the last {w}", evidence)
    worst = failing[0]
    status = (
        Status.CRIT if worst.error_ratio >= crit else Status.WARN if worst.error_ratio >= warn else Status.OK
    )
    codes = ", ".join(sorted(worst.errors_per_s))
    return CheckResult(
        "errors-by-route",
        status,
        f"{len(failing)} routes answer 5xx; worst {worst.route} at {worst.error_ratio:.0%} ({codes})",
        evidence,
        remedy="One route: its handler or dependency; every route: the service or a shared dependency.",
    )


def slowest_routes(
    targets: Targets,
    service: str = "api",
    *,
    quantile: float = 0.95,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> list[tuple[str, float]]:
    """(route, seconds) at `quantile` of request duration over the window, slowest first."""
    job, w = targets.job(service), _window(targets, window)
    promql = (
        f"histogram_quantile({quantile:g}, sum by (route, le) "
        f'(rate(http_request_duration_seconds_bucket{{job="{job}"}}[{w}])))'
    )
    rows = [(s.labels.get("route", "?"), s.value) for s in query(targets, promql, client=client)]
    return sorted(((r, v) for r, v in rows if not math.isnan(v)), key=lambda rv: -rv[1])


def check_slowest_routes(
    targets: Targets,
    service: str = "api",
    *,
    quantile: float = 0.95,
    warn_s: float = 2.0,
    crit_s: float = 7.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The slowest routes at `quantile`: the slowest judges (WARN from `warn_s`, CRIT from `crit_s`)."""
    try:
        routes = slowest_routes(targets, service, quantile=quantile, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask("slowest-routes", exc)
    w = _window(targets, window)
    if not routes:
        return CheckResult("slowest-routes", Status.UNKNOWN, f"no requests in the last {w}: nothing to judge")
    route, seconds = routes[0]
    status = Status.CRIT if seconds >= crit_s else Status.WARN if seconds >= warn_s else Status.OK
    return CheckResult(
        "slowest-routes",
        status,
        f"slowest: {route} at {seconds:.2f} s (p{quantile * 100:g}) over the last {w}",
        {"window": w, "routes": {r: round(v, 3) for r, v in routes[:5]}},
        remedy="One slow route: its handler or its dependency; every route: the process or the host.",
    )


def check_route_error_ratio(
    targets: Targets,
    service: str = "api",
    *,
    routes: str = "/api/.*",
    warn: float = 0.02,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The 5xx share of the requests whose route matches `routes` (a regex; customers' routes by
    default, so that a health endpoint answering 503 on purpose does not count)."""
    job, w = targets.job(service), _window(targets, window)
    selector = f'job="{job}",route=~"{routes}"'
    try:
        total = scalar(targets, f"sum(rate(http_requests_total{{{selector}}}[{w}]))", client=client)
        errors = scalar(
            targets, f'sum(rate(http_requests_total{{{selector},status=~"5.."}}[{w}]))', client=client
        )
    except ProbeError as exc:
        return _cannot_ask("error-ratio", exc)
    if not total:
        return CheckResult("error-ratio", Status.UNKNOWN, f"no requests to {routes} in the last {w}")
    ratio = (errors or 0.0) / total
    evidence = {"routes": routes, "window": w, "warn": warn, "crit": crit}
    return _error_ratio_verdict(ratio, f"requests to {routes}", evidence, warn, crit)


def check_cache_hit_ratio(
    targets: Targets,
    service: str = "api",
    *,
    floor: float = 0.30,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The share of the service's cache look-ups that hit over the window: WARN under `floor`."""
    job, w = targets.job(service), _window(targets, window)
    try:
        hits = scalar(
            targets, f'sum(rate(cache_requests_total{{job="{job}",result="hit"}}[{w}]))', client=client
        )
        total = scalar(targets, f'sum(rate(cache_requests_total{{job="{job}"}}[{w}]))', client=client)
    except ProbeError as exc:
        return _cannot_ask("cache-hit-ratio", exc)
    if not total:
        return CheckResult(
            "cache-hit-ratio", Status.UNKNOWN, f"no cache look-ups in the last {w}", {"window": w}
        )
    ratio = (hits or 0.0) / total
    status = Status.WARN if ratio < floor else Status.OK
    return CheckResult(
        "cache-hit-ratio",
        status,
        f"{ratio:.0%} of cache look-ups hit over the last {w}",
        {"hit_ratio": round(ratio, 4), "floor": floor, "window": w},
        remedy="A cold cache sends every request to the provider: warm it, check its TTL and evictions.",
    )
