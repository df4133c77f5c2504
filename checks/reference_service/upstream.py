"""The upstream provider: what it says about itself, and how our calls to it fare.

Four independent views of one dependency: the provider's status page, the
outcomes of the service's calls to it (errors, time-outs, 429s) and their
latency in Prometheus, the circuit breaker that guards those calls, and the
share of analyses answered by the degraded fallback instead of the provider.
Every verdict reports a dead Prometheus or an unreachable page as UNKNOWN with
the error as evidence; none of them raises.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import httpx

from checks import http, prometheus
from checks._errors import ConfigError, ProbeError
from checks._policy import load_environments
from checks._result import CheckResult, Status, ladder, not_applicable
from checks.by_hand import Manual, Render, by_hand, manuals, nothing_to_run, percent
from checks.targets import Targets, sandbox_state_path

__all__ = [
    "STATUS_PAGE_PATH",
    "STATUS_PAGE_VARIABLE",
    "call_outcomes",
    "call_outcomes_query",
    "check_circuit_breaker",
    "check_fallback_share",
    "check_latency_source",
    "check_rate_limited",
    "check_status_page",
    "check_upstream_errors",
    "check_upstream_latency",
    "check_upstream_timeouts",
    "circuit_breaker_queries",
    "fallback_share_queries",
    "latency_source_queries",
    "status_page_url",
    "upstream_latency_query",
]

#: Where a status page in the common format publishes its state, below its base URL.
STATUS_PAGE_PATH = "/api/v2/status.json"
#: The environment variable that names the provider's status page, when set.
STATUS_PAGE_VARIABLE = "DRILLBOOK_UPSTREAM_STATUS_URL"
_FAILED = ("error", "timeout")
_IN_THE_SERVICE = "Look at the service itself: its last deploy, CPU, database time; restart it, roll it back."


_FALLBACK = frozenset({"dependency_down_with_fallback"})
"""What the reference service's provider failing means for customers: every analysis the
provider does not answer (failed, rate-limited, circuit open) gets the degraded fallback."""


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


def _status_page_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    url = args["url"] or status_page_url(targets)
    if not url:
        return nothing_to_run(
            f"no status page of the upstream provider is known here: export {STATUS_PAGE_VARIABLE}, "
            "or open the provider's status page in a browser"
        )
    note = "status.indicator: none OK, minor WARN, major or critical CRIT; components not operational"
    return [Manual("http", url, note, timeout_s=args["timeout_s"])]


@by_hand(_status_page_by_hand)
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
        return not_applicable(
            "status-page",
            f"an upstream provider's status page ({STATUS_PAGE_VARIABLE})",
            requires=["upstream_status_page"],
            configure=f"Where the service has a provider, export {STATUS_PAGE_VARIABLE}.",
        )
    page = http.check_status_page(url, timeout_s=timeout_s, client=client)
    if page.status is Status.CRIT:  # the provider says it is down: the reference service falls back
        return dataclasses.replace(page, conditions=page.conditions | _FALLBACK)
    return page


def call_outcomes_query(targets: Targets, *, window: str | None = None) -> str:
    """The PromQL of `call_outcomes`: upstream calls per second by outcome."""
    w = window or targets.query.rate_window
    outcome = targets.signals["upstream_requests"].label("outcome")
    return f"sum by ({outcome}) (rate({prometheus.series(targets, 'upstream_requests', None)}[{w}]))"


def call_outcomes(
    targets: Targets, *, window: str | None = None, client: httpx.Client | None = None
) -> dict[str, float]:
    """Calls to the upstream per second over the window, by outcome (ok, error, timeout,
    rate_limited); `ProbeError` when Prometheus cannot answer."""
    outcome = targets.signals["upstream_requests"].label("outcome")
    promql = call_outcomes_query(targets, window=window)
    return {
        s.labels.get(outcome, "?"): s.value
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
    if lacking := prometheus._lacking(targets, name, "upstream_requests"):
        return lacking
    try:
        rates = call_outcomes(targets, window=window, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask(name, exc)
    if not rates:  # no series at all: the metric is not there, which says nothing
        return prometheus._no_requests(targets, name, w, "upstream_requests")
    if past := prometheus.stale(targets, name, "upstream_requests", client=client):
        return past
    total = sum(rates.values())
    evidence: dict[str, Any] = {"per_second": {k: round(v, 3) for k, v in sorted(rates.items())}, "window": w}
    if total <= 0:  # current samples that show no call: observed, and nothing failed
        return CheckResult(name, Status.OK, f"no upstream calls in the last {w}: none {what}", evidence)
    share = sum(rates.get(o, 0.0) for o in outcomes) / total
    evidence |= {"share": round(share, 4), "warn": warn, "crit": crit}
    status = ladder(share, warn=warn, crit=crit)
    return CheckResult(
        name, status, f"{share:.0%} of upstream calls {what} over the last {w}", evidence, remedy=remedy,
        conditions=_FALLBACK if status is Status.CRIT else frozenset(),
    )  # fmt: skip


def _share_by_hand(outcomes: tuple[str, ...], what: str) -> Render:
    """The by-hand render of a check that judges the share of upstream calls with `outcomes`."""

    def render(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
        w = args["window"] or targets.query.rate_window
        note = (
            f"upstream calls per second by outcome over the last {w}: the share that {what} "
            f"({' or '.join(outcomes)}) of them all is WARN from {percent(args['warn'])}, CRIT from "
            f"{percent(args['crit'])}"
        )
        return [Manual("promql", call_outcomes_query(targets, window=args["window"]), note)]

    return render


@by_hand(_share_by_hand(_FAILED, "failed"))
def check_upstream_errors(
    targets: Targets,
    *,
    warn: float = 0.10,
    crit: float = 0.50,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Share of upstream calls that failed (5xx, connection error, time-out): the provider's health
    as our traffic sees it. OK when current samples show no call (the cache or an open circuit
    served all); UNKNOWN when there is no series at all or the newest is stale."""
    return _share(
        targets, "upstream-errors", _FAILED, warn=warn, crit=crit, window=window, client=client,
        what="failed",
        remedy="Check the provider's status page; open the circuit breaker so the fallback answers.",
    )  # fmt: skip


@by_hand(_share_by_hand(("rate_limited",), "were rate-limited (429)"))
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


@by_hand(_share_by_hand(("timeout",), "timed out"))
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


def circuit_breaker_queries(targets: Targets) -> tuple[str, str]:
    """The PromQL of `check_circuit_breaker`: the breaker's highest state over the rate window,
    and whether an operator holds it open."""
    w = targets.query.rate_window
    state = prometheus.series(targets, "circuit_breaker_state", None)
    return (
        f"max(max_over_time({state}[{w}]))",
        f"max({prometheus.series(targets, 'circuit_breaker_forced', None)})",
    )


def _circuit_breaker_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    state, forced = circuit_breaker_queries(targets)
    return [
        Manual(
            "promql",
            state,
            f"the breaker's highest state over the last {targets.query.rate_window}: 0 closed (OK), "
            "0.5 half-open (WARN), 1 open (CRIT: consecutive calls failed)",
        ),
        Manual("promql", forced, "1 while an operator holds it open on purpose (WARN: the fallback answers)"),
    ]


@by_hand(_circuit_breaker_by_hand)
def check_circuit_breaker(targets: Targets, *, client: httpx.Client | None = None) -> CheckResult:
    """The upstream circuit over the window: CRIT when it opened on its own (calls fail), WARN when
    half-open or held open by an operator (the fallback answers on purpose), OK when closed."""
    w = targets.query.rate_window
    if lacking := prometheus._lacking(
        targets, "circuit-breaker", "circuit_breaker_state", "circuit_breaker_forced"
    ):
        return lacking
    state_series = prometheus.series(targets, "circuit_breaker_state", None)
    state_query, forced_query = circuit_breaker_queries(targets)
    try:
        state = prometheus.scalar(targets, state_query, client=client)
        forced = prometheus.scalar(targets, forced_query, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("circuit-breaker", exc)
    evidence = {"state": state, "forced": bool(forced), "window": w}
    if state is None:
        return CheckResult(
            "circuit-breaker",
            Status.UNKNOWN,
            f"Prometheus has no {state_series}",
            evidence,
            remedy="Not scraped (see the service-down runbook), or the signal is mapped wrong.",
        )
    if past := prometheus.stale(targets, "circuit-breaker", "circuit_breaker_state", client=client):
        return past
    # Open, on its own or held by an operator: the provider is out of the path and customers
    # get the fallback, the same incident before and after the mitigation.
    if forced:
        return CheckResult(
            "circuit-breaker", Status.WARN,
            "held open by an operator: every analysis gets the degraded fallback", evidence,
            remedy="Release it (close_circuit_breaker) once the provider is healthy again.",
            conditions=_FALLBACK,
        )  # fmt: skip
    if state >= 1:
        return CheckResult(
            "circuit-breaker", Status.CRIT,
            f"opened on its own in the last {w}: consecutive upstream calls failed", evidence,
            remedy="The provider fails: hold the circuit open (fallback) until it recovers.",
            conditions=_FALLBACK,
        )  # fmt: skip
    if state > 0:
        return CheckResult("circuit-breaker", Status.WARN, f"half-open in the last {w}: probing", evidence)
    return CheckResult("circuit-breaker", Status.OK, "closed: calls go to the provider", evidence)


def fallback_share_queries(targets: Targets, *, window: str | None = None) -> tuple[str, str]:
    """The PromQL of `check_fallback_share`: fallback answers per second, and analyses per second."""
    w = window or targets.query.rate_window
    return (
        f"sum(rate({prometheus.series(targets, 'fallback_responses', None)}[{w}]))",
        f"sum(rate({prometheus.series(targets, 'skill_requests', None)}[{w}]))",
    )


def _fallback_share_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    fallbacks, total = fallback_share_queries(targets, window=args["window"])
    return [
        Manual(
            "promql",
            f"{fallbacks} / {total}",
            f"the share of analyses answered by the degraded fallback over the last "
            f"{args['window'] or targets.query.rate_window}: WARN from {percent(args['warn'])}, CRIT from "
            f"{percent(args['crit'])}",
        )
    ]


@by_hand(_fallback_share_by_hand)
def check_fallback_share(
    targets: Targets,
    *,
    warn: float = 0.05,
    crit: float = 0.50,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Share of analyses answered by the degraded fallback instead of the provider."""
    w = window or targets.query.rate_window
    if lacking := prometheus._lacking(targets, "fallback-share", "fallback_responses", "skill_requests"):
        return lacking
    fallbacks_query, total_query = fallback_share_queries(targets, window=window)
    try:
        fallbacks = prometheus.scalar(targets, fallbacks_query, client=client)
        total = prometheus.scalar(targets, total_query, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("fallback-share", exc)
    if not total:
        return prometheus._no_requests(targets, "fallback-share", w, "skill_requests")
    if past := prometheus.stale(targets, "fallback-share", "skill_requests", client=client):
        return past
    share = (fallbacks or 0.0) / total
    evidence = {"share": round(share, 4), "window": w, "warn": warn, "crit": crit}
    status = ladder(share, warn=warn, crit=crit)
    return CheckResult(
        "fallback-share",
        status,
        f"{share:.0%} of analyses got the degraded fallback over the last {w}",
        evidence,
        remedy="Customers get degraded answers: find why the provider is not used (circuit, errors, 429).",
        # Most answers from the fallback: the provider is down for us, whatever its status page says.
        conditions=_FALLBACK if status is Status.CRIT else frozenset(),
    )


def upstream_latency_query(targets: Targets, *, quantile: float, window: str | None = None) -> str:
    """The PromQL of `check_upstream_latency`: the `quantile` of upstream call duration."""
    w = window or targets.query.rate_window
    buckets = prometheus.series(targets, "upstream_duration", None)
    return f"histogram_quantile({quantile:g}, sum by (le) (rate({buckets}[{w}])))"


def _upstream_latency_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    quantile = args["quantile"]
    return [
        Manual(
            "promql",
            upstream_latency_query(targets, quantile=quantile, window=args["window"]),
            f"p{quantile * 100:g} of upstream calls in seconds (no sample: no call): WARN from "
            f"{args['warn_s']:g} s, CRIT from {args['crit_s']:g} s",
        )
    ]


@by_hand(_upstream_latency_by_hand)
def check_upstream_latency(
    targets: Targets,
    *,
    quantile: float = 0.95,
    warn_s: float = 2.0,
    crit_s: float = 5.0,
    window: str | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """A quantile of upstream call duration: is the provider the slow part? OK when current
    samples show no call; UNKNOWN without a current series."""
    w = window or targets.query.rate_window
    if lacking := prometheus._lacking(targets, "upstream-latency", "upstream_duration"):
        return lacking
    promql = upstream_latency_query(targets, quantile=quantile, window=window)
    try:
        seconds = prometheus.scalar(targets, promql, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("upstream-latency", exc)
    if past := prometheus.stale(targets, "upstream-latency", "upstream_duration", client=client):
        return past
    if seconds is None:  # current buckets that did not move: no call in the window
        return CheckResult("upstream-latency", Status.OK, f"no upstream calls in the last {w}", {"window": w})
    status = ladder(seconds, warn=warn_s, crit=crit_s)
    return CheckResult(
        "upstream-latency",
        status,
        f"p{quantile * 100:g} of upstream calls {seconds:.2f} s over the last {w}",
        {"seconds": round(seconds, 3), "window": w, "warn_s": warn_s, "crit_s": crit_s},
        remedy="The provider is slow: open the circuit breaker (fallback) or lower max tokens.",
    )


def latency_source_queries(
    targets: Targets, *, quantile: float, window: str | None = None
) -> tuple[str, str]:
    """The PromQL of `check_latency_source`: the `quantile` of the service's /api requests, and
    of its upstream calls."""
    w = window or targets.query.rate_window
    on_api = f'{targets.signals["request_duration"].label("route")}=~"/api/.*"'
    api = (
        f"histogram_quantile({quantile:g}, sum by (le) "
        f"(rate({prometheus.series(targets, 'request_duration', None, on_api)}[{w}])))"
    )
    return api, upstream_latency_query(targets, quantile=quantile, window=window)


def _latency_source_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    if targets.signals.lacking("upstream_duration"):  # as the check: the service's own quantile
        own = {k: args[k] for k in ("quantile", "warn_s", "crit_s", "window")}
        return manuals(prometheus.check_latency_quantile, targets, own) or []
    label = f"p{args['quantile'] * 100:g}"
    api, provider = latency_source_queries(targets, quantile=args["quantile"], window=args["window"])
    return [
        Manual(
            "promql",
            api,
            f"{label} of /api requests in seconds: under {args['warn_s']:g} s it is not slow",
        ),
        Manual(
            "promql",
            provider,
            f"{label} of upstream calls: half of the above or more, the provider is the slow part (WARN); "
            f"less, the time is spent in the service (CRIT from {args['crit_s']:g} s)",
        ),
    ]


@by_hand(_latency_source_by_hand)
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
    w = window or targets.query.rate_window
    if lacking := prometheus._lacking(targets, "latency-source", "request_duration"):
        return lacking
    if targets.signals.lacking("upstream_duration"):  # no provider is timed: the service alone
        result = prometheus.check_latency_quantile(
            targets, quantile=quantile, warn_s=warn_s, crit_s=crit_s, window=window, client=client
        )
        if not result.status.problem:
            return replace(result, name="latency-source")
        return replace(
            result,
            name="latency-source",
            summary=f"{result.summary}; no upstream call is timed here: the time is spent in the service",
            remedy=_IN_THE_SERVICE,
        )
    api, provider = latency_source_queries(targets, quantile=quantile, window=window)
    try:
        api_s = prometheus.scalar(targets, api, client=client)
        upstream_s = prometheus.scalar(targets, provider, client=client)
    except ProbeError as exc:
        return prometheus._cannot_ask("latency-source", exc)
    if api_s is None:
        return prometheus._no_requests(targets, "latency-source", w, "request_duration", " to /api")
    if past := prometheus.stale(targets, "latency-source", "request_duration", client=client):
        return past
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
        remedy=_IN_THE_SERVICE,
        measurements={"p95_latency_seconds": api_s} if quantile == 0.95 else {},
    )
