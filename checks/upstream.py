"""The upstream provider: what it says about itself, and how our calls to it fare.

Four independent views of one dependency: the provider's status page, the
outcomes of the service's calls to it (errors, time-outs, 429s) and their
latency in Prometheus, the circuit breaker that guards those calls, and the
share of analyses answered by the degraded fallback instead of the provider.
Every verdict reports a dead Prometheus or an unreachable page as UNKNOWN with
the error as evidence; none of them raises.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from checks import http, prometheus
from checks._errors import ConfigError, ProbeError
from checks._policy import load_environments
from checks._result import CheckResult, Status
from checks.targets import Targets, sandbox_state_path

__all__ = [
    "STATUS_PAGE_PATH",
    "STATUS_PAGE_VARIABLE",
    "call_outcomes",
    "check_circuit_breaker",
    "check_fallback_share",
    "check_latency_source",
    "check_rate_limited",
    "check_status_page",
    "check_upstream_errors",
    "check_upstream_latency",
    "check_upstream_timeouts",
    "status_page_url",
]

#: Where a status page in the common format publishes its state, below its base URL.
STATUS_PAGE_PATH = "/api/v2/status.json"
#: The environment variable that names the provider's status page, when set.
STATUS_PAGE_VARIABLE = "DRILLBOOK_UPSTREAM_STATUS_URL"
_FAILED = ("error", "timeout")


def status_page_url(targets: Targets) -> str | None:
    """The provider's status page for `targets`: `$DRILLBOOK_UPSTREAM_STATUS_URL`, else the
    upstream a sandbox's state file names; None when neither says."""
    if value := os.environ.get(STATUS_PAGE_VARIABLE):
        return value
    try:
        spec: Mapping[str, Any] = load_environments().get(targets.environment, {})
    except (ConfigError, OSError):
        return None
    if spec.get("endpoints_from") != "sandbox-state":
        return None
    try:
        state = json.loads(sandbox_state_path().read_text(encoding="utf-8"))
        base = state["endpoints"]["upstream"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"{str(base).rstrip('/')}{STATUS_PAGE_PATH}"


def check_status_page(
    targets: Targets,
    *,
    url: str | None = None,
    timeout_s: float = 5.0,
    client: httpx.Client | None = None,
) -> CheckResult:
    """What the provider says about itself (`url`, else `status_page_url(targets)`)."""
    url = url or status_page_url(targets)
    if not url:
        return CheckResult(
            "status-page",
            Status.UNKNOWN,
            "no status page is configured for this environment",
            {"variable": STATUS_PAGE_VARIABLE},
            remedy=f"Open the provider's status page by hand, or export {STATUS_PAGE_VARIABLE}.",
        )
    return http.check_status_page(url, timeout_s=timeout_s, client=client)


def call_outcomes(
    targets: Targets, *, window: str | None = None, client: httpx.Client | None = None
) -> dict[str, float]:
    """Calls to the upstream per second over the window, by outcome (ok, error, timeout,
    rate_limited); `ProbeError` when Prometheus cannot answer."""
    job, w = targets.job("api"), window or targets.query.rate_window
    promql = f'sum by (outcome) (rate(upstream_requests_total{{job="{job}"}}[{w}]))'
    return {
        s.labels.get("outcome", "?"): s.value
        for s in prometheus.query(targets, promql, client=client)
        if s.value == s.value  # NaN-free
    }


def _share(
    targets: Targets,
    name: str,
    outcomes: tuple[str, ...],
    *,
    warn: float,
    crit: float,
    window: str | None,
    client: httpx.Client | None,
    what: str,
    remedy: str,
) -> CheckResult:
    w = window or targets.query.rate_window
    try:
        rates = call_outcomes(targets, window=window, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(name, exc)
    total = sum(rates.values())
    evidence: dict[str, Any] = {"per_second": {k: round(v, 3) for k, v in sorted(rates.items())}, "window": w}
    if total <= 0:
        return CheckResult(name, Status.OK, f"no upstream calls in the last {w}: none {what}", evidence)
    share = sum(rates.get(o, 0.0) for o in outcomes) / total
    evidence |= {"share": round(share, 4), "warn": warn, "crit": crit}
    status = Status.CRIT if share >= crit else Status.WARN if share >= warn else Status.OK
    return CheckResult(
        name, status, f"{share:.0%} of upstream calls {what} over the last {w}", evidence, remedy=remedy
    )


def check_upstream_errors(
    targets: Targets,
    *,
    warn: float = 0.10,
    crit: float = 0.50,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Share of upstream calls that failed (5xx, connection error, time-out): the provider's health
    as our traffic sees it. OK when there were no calls (the cache or an open circuit served all)."""
    return _share(
        targets, "upstream-errors", _FAILED, warn=warn, crit=crit, window=window, client=client,
        what="failed",
        remedy="Check the provider's status page; open the circuit breaker so the fallback answers.",
    )  # fmt: skip


def check_rate_limited(
    targets: Targets,
    *,
    warn: float = 0.05,
    crit: float = 0.10,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Share of upstream calls answered 429: we exceed the provider's quota."""
    return _share(
        targets, "upstream-429", ("rate_limited",), warn=warn, crit=crit, window=window, client=client,
        what="were rate-limited (429)",
        remedy="Send fewer calls: open the circuit breaker (fallback), lower the rollout, ask for quota.",
    )  # fmt: skip


def check_upstream_timeouts(
    targets: Targets,
    *,
    warn: float = 0.05,
    crit: float = 0.20,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Share of upstream calls that the service gave up on (its upstream timeout)."""
    return _share(
        targets, "upstream-timeouts", ("timeout",), warn=warn, crit=crit, window=window, client=client,
        what="timed out",
        remedy="The provider is slower than our timeout: raise the upstream timeout if it still answers.",
    )  # fmt: skip


def check_circuit_breaker(targets: Targets, *, client: httpx.Client | None = None) -> CheckResult:
    """The upstream circuit over the window: CRIT when it opened on its own (calls fail), WARN when
    half-open or held open by an operator (the fallback answers on purpose), OK when closed."""
    job, w = targets.job("api"), targets.query.rate_window
    try:
        state = prometheus.scalar(
            targets, f'max(max_over_time(circuit_breaker_state{{job="{job}"}}[{w}]))', client=client
        )
        forced = prometheus.scalar(targets, f'max(circuit_breaker_forced{{job="{job}"}})', client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("circuit-breaker", exc)
    evidence = {"state": state, "forced": bool(forced), "window": w}
    if state is None:
        return CheckResult(
            "circuit-breaker",
            Status.UNKNOWN,
            f"Prometheus has no circuit_breaker_state for job {job!r}",
            evidence,
            remedy="The service is not scraped: see the service-down runbook.",
        )
    if forced:
        return CheckResult(
            "circuit-breaker", Status.WARN,
            "held open by an operator: every analysis gets the degraded fallback", evidence,
            remedy="Release it (close_circuit_breaker) once the provider is healthy again.",
        )  # fmt: skip
    if state >= 1:
        return CheckResult(
            "circuit-breaker", Status.CRIT,
            f"opened on its own in the last {w}: consecutive upstream calls failed", evidence,
            remedy="The provider fails: hold the circuit open (fallback) until it recovers.",
        )  # fmt: skip
    if state > 0:
        return CheckResult("circuit-breaker", Status.WARN, f"half-open in the last {w}: probing", evidence)
    return CheckResult("circuit-breaker", Status.OK, "closed: calls go to the provider", evidence)


def check_fallback_share(
    targets: Targets,
    *,
    warn: float = 0.05,
    crit: float = 0.50,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Share of analyses answered by the degraded fallback instead of the provider."""
    job, w = targets.job("api"), window or targets.query.rate_window
    try:
        fallbacks = prometheus.scalar(
            targets, f'sum(rate(fallback_responses_total{{job="{job}"}}[{w}]))', client=client
        )
        total = prometheus.scalar(
            targets, f'sum(rate(skill_requests_total{{job="{job}"}}[{w}]))', client=client
        )
    except ProbeError as exc:
        return prometheus._cannot_ask("fallback-share", exc)
    if not total:
        return CheckResult(
            "fallback-share", Status.UNKNOWN, f"no analyses in the last {w}: nothing to judge", {"window": w}
        )
    share = (fallbacks or 0.0) / total
    evidence = {"share": round(share, 4), "window": w, "warn": warn, "crit": crit}
    status = Status.CRIT if share >= crit else Status.WARN if share >= warn else Status.OK
    return CheckResult(
        "fallback-share",
        status,
        f"{share:.0%} of analyses got the degraded fallback over the last {w}",
        evidence,
        remedy="Customers get degraded answers: find why the provider is not used (circuit, errors, 429).",
    )


def check_upstream_latency(
    targets: Targets,
    *,
    quantile: float = 0.95,
    warn_s: float = 2.0,
    crit_s: float = 5.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """A quantile of upstream call duration: is the provider the slow part? OK without calls."""
    job, w = targets.job("api"), window or targets.query.rate_window
    promql = (
        f"histogram_quantile({quantile:g}, sum by (le) "
        f'(rate(upstream_request_duration_seconds_bucket{{job="{job}"}}[{w}])))'
    )
    try:
        seconds = prometheus.scalar(targets, promql, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("upstream-latency", exc)
    if seconds is None:
        return CheckResult("upstream-latency", Status.OK, f"no upstream calls in the last {w}", {"window": w})
    status = Status.CRIT if seconds >= crit_s else Status.WARN if seconds >= warn_s else Status.OK
    return CheckResult(
        "upstream-latency",
        status,
        f"p{quantile * 100:g} of upstream calls {seconds:.2f} s over the last {w}",
        {"seconds": round(seconds, 3), "window": w, "warn_s": warn_s, "crit_s": crit_s},
        remedy="The provider is slow: open the circuit breaker (fallback) or lower max tokens.",
    )


def check_latency_source(
    targets: Targets,
    *,
    quantile: float = 0.95,
    warn_s: float = 1.0,
    crit_s: float = 2.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Where the time of slow requests goes: the service's own `quantile` of /api requests against
    the upstream's. CRIT when the service is slow (from `crit_s`) and less than half of it is the
    provider's: the time is spent inside the service (its process, its host, its database)."""
    job, w = targets.job("api"), window or targets.query.rate_window
    api = (
        f"histogram_quantile({quantile:g}, sum by (le) "
        f'(rate(http_request_duration_seconds_bucket{{job="{job}",route=~"/api/.*"}}[{w}])))'
    )
    provider = (
        f"histogram_quantile({quantile:g}, sum by (le) "
        f'(rate(upstream_request_duration_seconds_bucket{{job="{job}"}}[{w}])))'
    )
    try:
        api_s = prometheus.scalar(targets, api, client=client)
        upstream_s = prometheus.scalar(targets, provider, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("latency-source", exc)
    if api_s is None:
        return CheckResult(
            "latency-source", Status.UNKNOWN, f"no /api requests in the last {w}", {"window": w}
        )
    share = min(1.0, (upstream_s or 0.0) / api_s) if api_s else 0.0
    evidence = {
        "api_s": round(api_s, 3),
        "upstream_s": None if upstream_s is None else round(upstream_s, 3),
        "upstream_share": round(share, 3),
        "window": w,
    }
    label = f"p{quantile * 100:g}"
    if api_s < warn_s:
        return CheckResult("latency-source", Status.OK, f"/api {label} {api_s:.2f} s: not slow", evidence)
    if share >= 0.5:
        return CheckResult(
            "latency-source", Status.WARN,
            f"/api {label} {api_s:.2f} s, of which the provider {share:.0%}: the upstream is the slow part",
            evidence, remedy="Open the circuit breaker (fallback) or lower max tokens.",
        )  # fmt: skip
    status = Status.CRIT if api_s >= crit_s else Status.WARN
    return CheckResult(
        "latency-source",
        status,
        f"/api {label} {api_s:.2f} s, the provider only {share:.0%} of it: the time is spent in the service",
        evidence,
        remedy="Look at the service itself: its last deploy, CPU, database time; restart it, roll it back.",
        measurements={"p95_latency_seconds": api_s} if quantile == 0.95 else {},
    )
