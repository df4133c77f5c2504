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
from checks._policy import parse_duration
from checks._result import CheckResult, Status, ladder, not_applicable, unobserved
from checks._transport import session
from checks.by_hand import Manual, by_hand, percent
from checks.targets import Targets
from checks.thresholds import thresholds

__all__ = [
    "Alert",
    "RouteErrors",
    "Sample",
    "cache_hit_ratio_queries",
    "check_cache_hit_ratio",
    "check_error_ratio",
    "check_errors_by_route",
    "check_firing_alerts",
    "check_latency_quantile",
    "check_route_error_ratio",
    "check_slowest_routes",
    "check_up",
    "error_ratio",
    "error_ratio_queries",
    "errors_by_route",
    "errors_by_route_queries",
    "firing_alerts",
    "latency_quantile",
    "latency_quantile_query",
    "query",
    "query_range",
    "route_error_ratio_queries",
    "scalar",
    "slowest_routes",
    "slowest_routes_query",
    "up_query",
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


def series(targets: Targets, signal: str, service: str | None, *matchers: str) -> str:
    """The PromQL selector of `signal` in the job of `service` (the signal's own service when
    None), with `matchers` added: the one place where a check's query meets metric names."""
    s = targets.signals[signal]
    return s.series(targets.job(service or s.service), *matchers)


def hit_matcher(targets: Targets) -> str:
    """The matcher of cache hits on the cache_requests signal's result label."""
    signal = targets.signals["cache_requests"]
    return f'{signal.label("result")}="{signal.value("hit")}"'


def sample_age(targets: Targets, selector: str, *, client: httpx.Client | None = None) -> float | None:
    """Seconds since the newest sample of `selector`; None when no series of it has a current
    sample (its target is not scraped any more: Prometheus marked the series stale)."""
    return scalar(targets, f"time() - max(timestamp({selector}))", client=client)


def exported(
    targets: Targets, signal: str, service: str | None = None, *, client: httpx.Client | None = None
) -> bool:
    """Whether the scrape targets of `signal`'s job expose its metric at all, from the metadata
    Prometheus keeps of their last scrapes. A labelled counter has no series until its first
    increment: this tells "none yet" from "not exported here"."""
    s = targets.signals[signal]
    job = targets.job(service or s.service)
    names = {s.metric, (s.metric or "").removesuffix("_total")}
    params = {"match_target": f'{{job="{job}"}}'}
    entries = _api(targets, "/api/v1/targets/metadata", params, timeout_s=None, client=client)
    return any(entry.get("metric") in names for entry in entries)


def stale(
    targets: Targets,
    name: str,
    signal: str,
    service: str | None = None,
    *,
    client: httpx.Client | None = None,
) -> CheckResult | None:
    """The UNKNOWN verdict of check `name` when the window of `signal` shows the past: no current
    sample, or the newest older than the environment's `max_sample_age_seconds`; else None.
    A rate over a window still has a value for a while after its target stopped answering."""
    selector = series(targets, signal, service)
    limit = targets.query.max_sample_age_seconds
    try:
        age = sample_age(targets, selector, client=client)
    except ProbeError as exc:
        return _cannot_ask(name, exc)
    if age is not None and age <= limit:
        return None
    why = "no current sample" if age is None else f"the newest sample is {age:.0f} s old"
    return unobserved(
        name,
        f"{selector}: {why} (limit {limit:g} s), so the window shows the past: the target is not scraped now",
        configure="Check the job's scrape target (`up`); the limit is query_defaults.max_sample_age_seconds.",
        evidence={"selector": selector, "age_s": age, "limit_s": limit},
    )


def _no_requests(targets: Targets, name: str, window: str, signal: str, scope: str = "") -> CheckResult:
    """The UNKNOWN verdict of a check that found nothing to judge in its window."""
    s = targets.signals[signal]
    return unobserved(
        name,
        f"no {signal.replace('_', ' ')}{scope} in the last {window}: nothing to judge",
        configure=(
            f"If the service takes traffic, signal {signal!r} is mapped wrong: it is read as {s.metric} in "
            f"job {targets.job(s.service)!r}. Map it under signals in environments.yml."
        ),
        evidence={"window": window, "signal": signal, "metric": s.metric, "job": targets.job(s.service)},
    )


def _lacking(targets: Targets, name: str, *signals: str) -> CheckResult | None:
    """The "not applicable here" verdict of check `name` when the environment lacks one of
    `signals`, else None."""
    lacking = targets.signals.lacking(*signals)
    if lacking is None:
        return None
    return not_applicable(name, lacking, requires=targets.signals.missing(*signals))


def _server_errors(targets: Targets) -> str:
    """The matcher of 5xx answers on the requests signal's status label."""
    return f'{targets.signals["requests"].label("status")}=~"5.."'


def error_ratio_queries(
    targets: Targets, service: str | None = None, *, window: str | None = None
) -> tuple[str, str]:
    """The PromQL of `error_ratio`: the 5xx share over the rate window, and the request rate
    (which tells "no 5xx" from "no traffic" when the share has no sample)."""
    w = _window(targets, window)
    total = f"sum(rate({series(targets, 'requests', service)}[{w}]))"
    errors = f"sum(rate({series(targets, 'requests', service, _server_errors(targets))}[{w}]))"
    return f"{errors} / {total}", total


def error_ratio(
    targets: Targets,
    service: str | None = None,
    *,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> float | None:
    """Share of the service's requests answered 5xx over the rate window; None without traffic."""
    ratio, total = error_ratio_queries(targets, service, window=window)
    errors = scalar(targets, ratio, client=client)
    if errors is None:
        # No 5xx series at all yields an empty vector: zero errors if there is traffic.
        return 0.0 if scalar(targets, total, client=client) else None
    return errors


def latency_quantile_query(
    targets: Targets, service: str | None = None, *, quantile: float, window: str | None = None
) -> str:
    """The PromQL of `latency_quantile`."""
    w = _window(targets, window)
    buckets = series(targets, "request_duration", service)
    return f"histogram_quantile({quantile:g}, sum by (le) (rate({buckets}[{w}])))"


def latency_quantile(
    targets: Targets,
    service: str | None = None,
    *,
    quantile: float = 0.95,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> float | None:
    """The `quantile` of request duration in seconds over the rate window; None without traffic."""
    return scalar(
        targets, latency_quantile_query(targets, service, quantile=quantile, window=window), client=client
    )


def _error_ratio_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    ratio, total = error_ratio_queries(targets, args["service"], window=args["window"])
    w = _window(targets, args["window"])
    return [
        Manual(
            "promql",
            ratio,
            f"the share of requests answered 5xx over the last {w}: WARN from {percent(args['warn'])}, "
            f"CRIT from {percent(args['crit'])}; no sample at all while requests flow means no 5xx",
        ),
        Manual("promql", total, "requests per second: no sample means no traffic, nothing to judge"),
    ]


@by_hand(_error_ratio_by_hand)
@thresholds(warn="error_ratio", crit="error_ratio")
def check_error_ratio(
    targets: Targets,
    service: str | None = None,
    *,
    warn: float = 0.05,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The 5xx share over the window: WARN from `warn`, CRIT from `crit`."""
    if lacking := _lacking(targets, "error-ratio", "requests"):
        return lacking
    try:
        ratio = error_ratio(targets, service, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask("error-ratio", exc)
    w = _window(targets, window)
    if ratio is None:
        return _no_requests(targets, "error-ratio", w, "requests")
    if past := stale(targets, "error-ratio", "requests", service, client=client):
        return past
    return _error_ratio_verdict(ratio, "requests", {"window": w, "warn": warn, "crit": crit}, warn, crit)


def _error_ratio_verdict(
    ratio: float, what: str, evidence: dict[str, Any], warn: float, crit: float
) -> CheckResult:
    """The one verdict on a 5xx share, whichever requests it was measured over."""
    return CheckResult(
        "error-ratio",
        ladder(ratio, warn=warn, crit=crit),
        f"{ratio:.1%} of {what} failed over the last {evidence['window']}",
        {"error_ratio": round(ratio, 4), **evidence},
        remedy="Break the errors down by route, status and error type to find the failing part.",
        measurements={"error_ratio": ratio},
    )


def _latency_quantile_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    quantile = args["quantile"]
    promql = latency_quantile_query(targets, args["service"], quantile=quantile, window=args["window"])
    return [
        Manual(
            "promql",
            promql,
            f"p{quantile * 100:g} of request duration in seconds over the last "
            f"{_window(targets, args['window'])}: WARN from {args['warn_s']:g} s, "
            f"CRIT from {args['crit_s']:g} s",
        )
    ]


@by_hand(_latency_quantile_by_hand)
@thresholds(warn_s="p95_latency_seconds", crit_s="p95_latency_seconds")
def check_latency_quantile(
    targets: Targets,
    service: str | None = None,
    *,
    quantile: float = 0.95,
    warn_s: float = 2.0,
    crit_s: float = 7.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """A latency quantile over the window: WARN from `warn_s`, CRIT from `crit_s` seconds."""
    name = f"p{quantile * 100:g}-latency"
    if lacking := _lacking(targets, name, "request_duration"):
        return lacking
    try:
        seconds = latency_quantile(targets, service, quantile=quantile, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask(name, exc)
    w = _window(targets, window)
    if seconds is None:
        return _no_requests(targets, name, w, "request_duration")
    if past := stale(targets, name, "request_duration", service, client=client):
        return past
    status = ladder(seconds, warn=warn_s, crit=crit_s)
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


def up_query(targets: Targets, service: str) -> str:
    """The PromQL of `check_up`: the scrape health of every target of `service`'s job."""
    return f'up{{job="{targets.job(service)}"}}'


def _up_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    note = "one sample per scrape target: 1 up, 0 down (the scrape fails); no sample: no such job"
    return [Manual("promql", up_query(targets, args["service"]), note)]


@by_hand(_up_by_hand)
def check_up(
    targets: Targets,
    service: str = "api",
    *,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Is every scrape target of `service`'s job up? CRIT when any is down, UNKNOWN when none exist."""
    job = targets.job(service)
    promql = up_query(targets, service)
    try:
        samples = query(targets, promql, client=client)
    except ProbeError as exc:
        return _cannot_ask("up", exc)
    if not samples:
        return unobserved(
            "up",
            f"Prometheus has no scrape target for job {job!r}",
            configure=(
                f"Map the {service} service to its Prometheus job under prometheus_jobs in "
                "environments.yml, or check the scrape configuration of that job."
            ),
            evidence={"query": promql},
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


def errors_by_route_queries(
    targets: Targets, service: str | None = None, *, window: str | None = None
) -> tuple[str, str]:
    """The PromQL of `errors_by_route`: requests per route, and 5xx per route and status."""
    w = _window(targets, window)
    signal = targets.signals["requests"]
    route, status = signal.label("route"), signal.label("status")
    failed = series(targets, "requests", service, _server_errors(targets))
    return (
        f"sum by ({route}) (rate({series(targets, 'requests', service)}[{w}]))",
        f"sum by ({route}, {status}) (rate({failed}[{w}]))",
    )


def errors_by_route(
    targets: Targets,
    service: str | None = None,
    *,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> list[RouteErrors]:
    """Requests and 5xx per route over the rate window, worst error ratio first."""
    signal = targets.signals["requests"]
    route, status = signal.label("route"), signal.label("status")
    by_route_query, failed_query = errors_by_route_queries(targets, service, window=window)
    totals = query(targets, by_route_query, client=client)
    errors = query(targets, failed_query, client=client)
    by_route: dict[str, dict[str, float]] = {}
    for sample in errors:
        if sample.value > 0:
            by_route.setdefault(sample.labels.get(route, "?"), {})[sample.labels.get(status, "?")] = (
                sample.value
            )
    routes = [
        RouteErrors(s.labels.get(route, "?"), s.value, by_route.get(s.labels.get(route, "?"), {}))
        for s in totals
        if s.value > 0
    ]
    return sorted(routes, key=lambda r: (-r.error_ratio, r.route))


def _errors_by_route_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    totals, failed = errors_by_route_queries(targets, args["service"], window=args["window"])
    return [
        Manual(
            "promql",
            failed,
            "5xx per second by route and status code: 500 is the service's own fault, 502/504 the "
            "upstream's, 503 a dependency that refused",
        ),
        Manual(
            "promql",
            totals,
            f"requests per second by route: divide to get each route's share (WARN from "
            f"{percent(args['warn'])}, CRIT from {percent(args['crit'])} for the worst route)",
        ),
    ]


@by_hand(_errors_by_route_by_hand)
@thresholds(warn="error_ratio", crit="error_ratio")
def check_errors_by_route(
    targets: Targets,
    service: str | None = None,
    *,
    warn: float = 0.05,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Where the 5xx are: the worst route's error ratio judges (WARN from `warn`, CRIT from `crit`),
    and the evidence lists every failing route with its status codes."""
    if lacking := _lacking(targets, "errors-by-route", "requests"):
        return lacking
    try:
        routes = errors_by_route(targets, service, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask("errors-by-route", exc)
    w = _window(targets, window)
    if not routes:
        return _no_requests(targets, "errors-by-route", w, "requests")
    if past := stale(targets, "errors-by-route", "requests", service, client=client):
        return past
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
    status = ladder(worst.error_ratio, warn=warn, crit=crit)
    codes = ", ".join(sorted(worst.errors_per_s))
    return CheckResult(
        "errors-by-route",
        status,
        f"{len(failing)} routes answer 5xx; worst {worst.route} at {worst.error_ratio:.0%} ({codes})",
        evidence,
        remedy="One route: its handler or dependency; every route: the service or a shared dependency.",
    )


def slowest_routes_query(
    targets: Targets, service: str | None = None, *, quantile: float, window: str | None = None
) -> str:
    """The PromQL of `slowest_routes`: the `quantile` of request duration per route."""
    w = _window(targets, window)
    route = targets.signals["request_duration"].label("route")
    buckets = series(targets, "request_duration", service)
    return f"histogram_quantile({quantile:g}, sum by ({route}, le) (rate({buckets}[{w}])))"


def slowest_routes(
    targets: Targets,
    service: str | None = None,
    *,
    quantile: float = 0.95,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> list[tuple[str, float]]:
    """(route, seconds) at `quantile` of request duration over the window, slowest first."""
    route = targets.signals["request_duration"].label("route")
    promql = slowest_routes_query(targets, service, quantile=quantile, window=window)
    rows = [(s.labels.get(route, "?"), s.value) for s in query(targets, promql, client=client)]
    return sorted(((r, v) for r, v in rows if not math.isnan(v)), key=lambda rv: -rv[1])


def _slowest_routes_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    quantile = args["quantile"]
    promql = slowest_routes_query(targets, args["service"], quantile=quantile, window=args["window"])
    return [
        Manual(
            "promql",
            promql,
            f"p{quantile * 100:g} in seconds per route (NaN: no request on it): the slowest judges, "
            f"WARN from {args['warn_s']:g} s, CRIT from {args['crit_s']:g} s",
        )
    ]


@by_hand(_slowest_routes_by_hand)
@thresholds(warn_s="p95_latency_seconds", crit_s="p95_latency_seconds")
def check_slowest_routes(
    targets: Targets,
    service: str | None = None,
    *,
    quantile: float = 0.95,
    warn_s: float = 2.0,
    crit_s: float = 7.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The slowest routes at `quantile`: the slowest judges (WARN from `warn_s`, CRIT from `crit_s`)."""
    if lacking := _lacking(targets, "slowest-routes", "request_duration"):
        return lacking
    try:
        routes = slowest_routes(targets, service, quantile=quantile, window=window, client=client)
    except ProbeError as exc:
        return _cannot_ask("slowest-routes", exc)
    w = _window(targets, window)
    if not routes:
        return _no_requests(targets, "slowest-routes", w, "request_duration")
    if past := stale(targets, "slowest-routes", "request_duration", service, client=client):
        return past
    route, seconds = routes[0]
    status = ladder(seconds, warn=warn_s, crit=crit_s)
    return CheckResult(
        "slowest-routes",
        status,
        f"slowest: {route} at {seconds:.2f} s (p{quantile * 100:g}) over the last {w}",
        {"window": w, "routes": {r: round(v, 3) for r, v in routes[:5]}},
        remedy="One slow route: its handler or its dependency; every route: the process or the host.",
    )


def _route_scope(targets: Targets, routes: str | None) -> tuple[str, str]:
    """The route matcher of `check_route_error_ratio` and how its summary names it."""
    signal = targets.signals["requests"]
    routes = routes or signal.values.get("customers")
    if routes:
        return f'{signal.label("route")}=~"{routes}"', f" to {routes}"
    skipped = f"{targets.health.path}|/metrics"
    return f'{signal.label("route")}!~"{skipped}"', f" (but {skipped})"


def route_error_ratio_queries(
    targets: Targets, service: str | None = None, *, routes: str | None = None, window: str | None = None
) -> tuple[str, str]:
    """The PromQL of `check_route_error_ratio`: the request rate on the routes, and their 5xx rate."""
    w = _window(targets, window)
    on_routes, _ = _route_scope(targets, routes)
    failed = series(targets, "requests", service, on_routes, _server_errors(targets))
    return f"sum(rate({series(targets, 'requests', service, on_routes)}[{w}]))", f"sum(rate({failed}[{w}]))"


def _route_error_ratio_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    total, errors = route_error_ratio_queries(
        targets, args["service"], routes=args["routes"], window=args["window"]
    )
    _, scope = _route_scope(targets, args["routes"])
    return [
        Manual(
            "promql",
            f"{errors} / {total}",
            f"the share of requests{scope} answered 5xx over the last {_window(targets, args['window'])}: "
            f"WARN from {percent(args['warn'])}, CRIT from {percent(args['crit'])}; no sample at all while "
            "requests flow means no 5xx",
        )
    ]


@by_hand(_route_error_ratio_by_hand)
@thresholds(warn="error_ratio", crit="error_ratio")
def check_route_error_ratio(
    targets: Targets,
    service: str | None = None,
    *,
    routes: str | None = None,
    warn: float = 0.05,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The 5xx share of the requests whose route matches `routes` (a regex): by default the
    customers' routes as the requests signal's `customers` value names them, else every route
    but the health path and /metrics, so that a health endpoint answering 503 on purpose does
    not count."""
    if lacking := _lacking(targets, "error-ratio", "requests"):
        return lacking
    w = _window(targets, window)
    on_routes, scope = _route_scope(targets, routes)
    total_query, errors_query = route_error_ratio_queries(targets, service, routes=routes, window=window)
    try:
        total = scalar(targets, total_query, client=client)
        errors = scalar(targets, errors_query, client=client)
    except ProbeError as exc:
        return _cannot_ask("error-ratio", exc)
    if not total:
        return _no_requests(targets, "error-ratio", w, "requests", scope)
    if past := stale(targets, "error-ratio", "requests", service, client=client):
        return past
    ratio = (errors or 0.0) / total
    evidence = {"routes": on_routes, "window": w, "warn": warn, "crit": crit}
    return _error_ratio_verdict(ratio, f"requests{scope}", evidence, warn, crit)


def cache_hit_ratio_queries(
    targets: Targets, service: str | None = None, *, window: str | None = None
) -> tuple[str, str]:
    """The PromQL of `check_cache_hit_ratio`: the rate of cache hits, and of every look-up."""
    w = _window(targets, window)
    hits = series(targets, "cache_requests", service, hit_matcher(targets))
    return (
        f"sum(rate({hits}[{w}]))",
        f"sum(rate({series(targets, 'cache_requests', service)}[{w}]))",
    )


def _cache_hit_ratio_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    hits, total = cache_hit_ratio_queries(targets, args["service"], window=args["window"])
    w = _window(targets, args["window"])
    return [
        Manual(
            "promql",
            f"{hits} / {total}",
            f"the share of cache look-ups that hit over the last {w}: WARN under "
            f"{percent(args['warn_below'])}, CRIT under {percent(args['crit_below'])}",
        ),
        Manual(
            "promql",
            total,
            f"look-ups per second: fewer than {args['min_lookups']} in the {w} window are too few to judge",
        ),
    ]


@by_hand(_cache_hit_ratio_by_hand)
@thresholds(warn_below="cache_hit_ratio")
def check_cache_hit_ratio(
    targets: Targets,
    service: str | None = None,
    *,
    warn_below: float = 0.30,
    crit_below: float = 0.0,
    min_lookups: int = 20,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """The share of the service's cache look-ups that hit over the window, from its own counters:
    WARN under `warn_below`, CRIT under `crit_below` (never, by default: a cold cache slows a
    service down; for the cache's own runbook it is the incident, and it sets both to its floor).
    UNKNOWN with fewer than `min_lookups` look-ups in the window: a ratio of a handful is chance.

    Unlike Redis's INFO counters (since Redis started), this sees a drop within one window
    and sees it climb back after a mitigation.
    """
    name = "cache-hit-ratio"
    if lacking := _lacking(targets, name, "cache_requests"):
        return lacking
    w = _window(targets, window)
    hits_query, total_query = cache_hit_ratio_queries(targets, service, window=window)
    try:
        hits = scalar(targets, hits_query, client=client)
        total = scalar(targets, total_query, client=client)
    except ProbeError as exc:
        return _cannot_ask(name, exc)
    if not total:
        return _no_requests(targets, name, w, "cache_requests")
    if past := stale(targets, name, "cache_requests", service, client=client):
        return past
    lookups = total * parse_duration(w).total_seconds()
    if lookups < min_lookups:
        return unobserved(
            name,
            f"only {lookups:.0f} cache look-ups in the last {w}: too few to judge a hit ratio",
            configure="Wait for traffic, or read it over a longer window (window=...).",
            evidence={"lookups": round(lookups, 1), "min_lookups": min_lookups, "window": w},
        )
    ratio = (hits or 0.0) / total
    return CheckResult(
        name,
        ladder(ratio, warn=warn_below, crit=crit_below, worse="below"),
        f"{ratio:.0%} of cache look-ups hit over the last {w} (floor {warn_below:.0%})",
        {"hit_ratio": round(ratio, 4), "warn_below": warn_below, "crit_below": crit_below, "window": w},
        remedy="Find why: Redis down, keys expiring too soon (TTL survey), or evicted; then warm it.",
        measurements={"cache_hit_ratio": ratio},
    )
