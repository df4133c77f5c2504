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
from checks._result import CheckResult, Status, ladder
from checks._transport import session
from checks.by_hand import Manual, by_hand, endpoint
from checks.targets import HealthContract, Targets

__all__ = [
    "LatencySample",
    "StatusPage",
    "check_health",
    "check_latency",
    "check_listening",
    "check_status_page",
    "health_request",
    "latency_sample",
    "latency_verdict",
    "status_page",
]


# The status words of the health bodies in common use, by the band they mean: the IETF health
# check draft (pass/warn/fail), Spring Boot (UP/DOWN/OUT_OF_SERVICE), and the ok/healthy/degraded
# family. Compared lower-case, with "-" and " " read as "_". An environment adds its own words
# under `health` in environments.yml.
_WORDS: Mapping[Status, frozenset[str]] = {
    Status.OK: frozenset({"ok", "pass", "up", "healthy", "green", "serving", "available"}),
    Status.WARN: frozenset({"warn", "warning", "degraded", "yellow", "partial"}),
    Status.CRIT: frozenset(
        {"fail", "failed", "down", "out_of_service", "unhealthy", "error", "critical", "red", "not_serving"}
    ),
}


def health_request(base: str, contract: HealthContract, path: str | None = None) -> str:
    """The URL `check_health` asks: the service's base URL and its health path (the contract's
    unless `path` is given)."""
    return base.rstrip("/") + (path or contract.path)


def _health_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    url = health_request(endpoint(targets, "api"), targets.health, args["path"])
    timeout = args["timeout_s"] if args["timeout_s"] is not None else targets.query.timeout_seconds
    note = (
        "the HTTP status first (5xx CRIT), then the body's status word (ok, degraded, down, ...) and "
        "each dependency's; no answer at all is CRIT, the service is unreachable"
    )
    return [Manual("http", url, note, timeout_s=timeout)]


@by_hand(_health_by_hand)
def check_health(
    target: Targets | str,
    *,
    path: str | None = None,
    timeout_s: float | None = None,
    client: httpx.Client | None = None,
) -> CheckResult:
    """Ask the service's health endpoint and judge the answer, HTTP status first.

    The body's status word, when it is one the environment's health contract knows, sets the
    band: OK ("ok", "pass", "UP", "healthy", ...), WARN ("degraded", "warn"), CRIT ("down",
    "fail", "OUT_OF_SERVICE", ...); an error status turns an OK word into CRIT. A body with no
    word it knows is judged by the status alone: 2xx OK, 5xx CRIT. A 4xx without a known word
    says nothing about the service (no health route at this path, or it needs credentials):
    UNKNOWN. An unreachable service is CRIT, with availability 0, which the severity policy reads.
    """
    contract = target.health if isinstance(target, Targets) else HealthContract()
    if isinstance(target, Targets):
        base = target.endpoint("api")
        timeout_s = timeout_s if timeout_s is not None else target.query.timeout_seconds
    else:
        base = target
    url = health_request(base, contract, path)
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
    return _judge(url, response, latency_ms, contract)


def _unreachable(url: str, error: str) -> CheckResult:
    return CheckResult(
        name="health",
        status=Status.CRIT,
        summary=f"the service is unreachable: {error}",
        evidence={"url": url, "error": error},
        remedy="Check that the process runs (platform status, `up` in Prometheus); restart it.",
        measurements={"availability": 0.0},
    )


def _band(word: object, contract: HealthContract) -> Status | None:
    """The band a status word means under `contract`, None for a word it does not know."""
    if not isinstance(word, str):
        return None
    key = word.strip().lower().replace("-", "_").replace(" ", "_")
    own = {Status.OK: contract.ok, Status.WARN: contract.warn, Status.CRIT: contract.crit}
    for status, words in own.items():
        if key in {w.lower().replace("-", "_").replace(" ", "_") for w in words}:
            return status
    return next((status for status, words in _WORDS.items() if key in words), None)


def _dependencies(body: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each dependency's (status word, error) from whichever map the body carries: `dependencies`
    (name -> {status, error}), Spring Boot's `components`, or the IETF draft's `checks`
    (name -> [{status, output}, ...], one entry per instance: the worst one counts)."""
    found: dict[str, tuple[Any, Any]] = {}
    for key in ("dependencies", "components", "details"):
        for name, dep in (body.get(key) or {}).items() if isinstance(body.get(key), dict) else ():
            if isinstance(dep, dict) and "status" in dep:
                found[name] = (dep["status"], dep.get("error") or dep.get("output"))
    checks = body.get("checks")
    if isinstance(checks, dict):
        for name, entries in checks.items():
            entries = entries if isinstance(entries, list) else [entries]
            states = [e for e in entries if isinstance(e, dict) and "status" in e]
            if states:
                worst = max(states, key=lambda e: _rank(e["status"]))
                found[name] = (worst["status"], worst.get("output") or worst.get("error"))
    return found


def _rank(word: object) -> int:
    band = _band(word, HealthContract())
    return band.rank if band is not None else Status.UNKNOWN.rank


def _judge(url: str, response: httpx.Response, latency_ms: float, contract: HealthContract) -> CheckResult:
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    word = body.get("status")
    band = _band(word, contract)
    dependencies = _dependencies(body)
    failing = {
        name: error or state
        for name, (state, error) in dependencies.items()
        if _band(state, contract) is not Status.OK
    }
    evidence: dict[str, Any] = {"url": url, "http_status": code, "latency_ms": latency_ms}
    if word is not None:
        evidence["status"] = word
    if body.get("version") is not None:
        evidence["version"] = body["version"]
    if dependencies:
        evidence["dependencies"] = {name: state for name, (state, _) in dependencies.items()}
    if failing:
        evidence["failing"] = failing
    detail = ", ".join(f"{name}: {why}" for name, why in failing.items())
    said = f"status {word!r}" if word is not None else "no status in the body"
    if band is None and 400 <= code < 500:
        return CheckResult(
            "health",
            Status.UNKNOWN,
            f"HTTP {code} from {url} and {said}: this says nothing about the service",
            evidence,
            remedy=(
                "No health route at this path, or it needs credentials: set `health.path` of this "
                "environment in environments.yml to the service's health endpoint."
            ),
        )
    if band is None:
        band = Status.OK if code < 400 else Status.CRIT
        if word is not None:
            said += " (a word the health contract does not know; add it under `health` in environments.yml)"
    elif band is Status.OK and code >= 400:
        band = Status.CRIT  # the body says fine, the server says it cannot serve: believe the worse
    if band is Status.OK:
        version = f" (version {body['version']})" if body.get("version") is not None else ""
        summary = f"healthy{version}: HTTP {code}, {said}"
        if failing:
            summary += f"; not healthy: {detail}"
        return CheckResult("health", Status.OK, summary, evidence)
    if band is Status.WARN:
        return CheckResult(
            "health",
            Status.WARN,
            f"degraded: HTTP {code}, {said}" + (f" ({detail})" if detail else ""),
            evidence,
            remedy="Follow the runbook of the failing dependency.",
        )
    # Down with a dependency named: the service still answers, and how much its customers lose
    # depends on that dependency's fallback, which the dependency's own checks tell; only a
    # service down for no named reason reads as unavailable.
    return CheckResult(
        "health",
        Status.CRIT,
        f"HTTP {code}, {said}" + (f" ({detail})" if detail else ""),
        evidence,
        remedy="Follow the runbook of the failing dependency; if none is named, restart the service.",
        measurements={} if failing else {"availability": 0.0},
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
    return latency_verdict(sample, warn_s=warn_s, crit_s=crit_s)


def latency_verdict(sample: LatencySample, *, warn_s: float, crit_s: float) -> CheckResult:
    """The verdict of `check_latency` on a sample: the p95's band, and at least WARN when any
    request failed."""
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
    status = ladder(p95, warn=warn_s, crit=crit_s)
    if failed and status is Status.OK:
        status = Status.WARN
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


def _address(base: str) -> tuple[str, int]:
    """The host and port a service's base URL names (its scheme's port when it names none)."""
    url = httpx.URL(base)
    return url.host or "localhost", url.port or (443 if url.scheme == "https" else 80)


def _listening_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
    base = endpoint(targets, "api")
    if base.startswith("$"):  # not known here: the address is the service's URL
        url = base
    else:
        host, port = _address(base)
        url = f"{httpx.URL(base).scheme}://{host}:{port}/"
    note = (
        "any HTTP answer, even an error, means something listens; 'Connection refused' means nothing "
        "does (the process is gone); a timeout means the host or the path drops the connection"
    )
    return [Manual("http", url, note, timeout_s=args["timeout_s"])]


@by_hand(_listening_by_hand)
def check_listening(target: Targets | str, *, timeout_s: float = 3.0) -> CheckResult:
    """Does anything accept TCP connections on the service's address? Tells a process that is gone
    (connection refused: nothing listens) from one that hangs or a path that drops (no answer)."""
    base = target.endpoint("api") if isinstance(target, Targets) else target
    host, port = _address(base)
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
