"""Fakes for unit tests of parsing and decisions: no network, no kernel.

    client = httpx.Client(transport=prometheus_transport({"up": [({"instance": "a"}, 1)]}))
    result = prometheus.check_up(targets(), client=client)

Only for tests of how checks read answers and decide; anything that can talk
to a real Prometheus, service or database in a test should.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from checks._policy import load_environments
from checks._result import CheckResult, Status
from checks.signals import Signals
from checks.targets import Targets

__all__ = ["alert", "json_transport", "prometheus_transport", "result", "targets"]

Series = Sequence[tuple[Mapping[str, str], float]]


def targets(environment: str = "test", *, gate: str = "apply", **overrides: Any) -> Targets:
    """Targets pointing at unroutable fake hosts, for use with a fake transport. Their signals and
    capabilities are the sandbox environment's (the reference service's), as
    policy/environments.yml declares them."""
    sandbox = load_environments()["sandbox"]
    values: dict[str, Any] = {
        "api": "http://api.test",
        "prometheus": "http://prometheus.test",
        "platform": {"restart": ("true",)},
        "signals": Signals.from_policy(sandbox.get("signals")),
        "capabilities": frozenset(sandbox.get("capabilities", ())),
        **overrides,
    }
    return Targets(environment=environment, gate=gate, **values)  # type: ignore[arg-type]


def prometheus_transport(
    answers: Mapping[str, Series] | Callable[[str], Series],
    *,
    alerts: Sequence[Mapping[str, Any]] = (),
    error: str | None = None,
    age_s: float | None = 1.0,
    exported: Sequence[str] = (),
) -> httpx.MockTransport:
    """A Prometheus HTTP API: instant queries answered from `answers` (query → samples, or a
    function of the query), and `alerts` as /api/v1/alerts reports them. A question for the age
    of a selector's newest sample gets `age_s` (None: no current sample); the targets' metadata
    lists the metrics in `exported`."""

    def handle(request: httpx.Request) -> httpx.Response:
        if error is not None:
            body = {"status": "error", "errorType": "bad_data", "error": error}
            return httpx.Response(400, json=body)
        if request.url.path.endswith("/api/v1/targets/metadata"):
            data = [{"metric": name, "type": "counter", "help": "", "unit": ""} for name in exported]
            return httpx.Response(200, json={"status": "success", "data": data})
        if request.url.path.endswith("/api/v1/alerts"):
            return httpx.Response(200, json={"status": "success", "data": {"alerts": list(alerts)}})
        promql = request.url.params.get("query", "")
        if promql.startswith("time() - max(timestamp("):
            series: Series = [] if age_s is None else [({}, age_s)]
        else:
            series = answers(promql) if callable(answers) else answers.get(promql, ())
        result = [
            {"metric": dict(labels), "value": [1_700_000_000.0, str(value)]} for labels, value in series
        ]
        return httpx.Response(
            200, json={"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    return httpx.MockTransport(handle)


def alert(name: str, *, state: str = "firing", severity: str = "SEV2", runbook: str = "") -> dict[str, Any]:
    """One alert as Prometheus's /api/v1/alerts lists it."""
    return {
        "labels": {"alertname": name, "severity": severity},
        "annotations": {"runbook_url": runbook} if runbook else {},
        "state": state,
        "activeAt": "2026-01-01T00:00:00Z",
        "value": "1",
    }


def json_transport(status_code: int, body: Any) -> httpx.MockTransport:
    """An HTTP server that answers every request with `status_code` and `body` as JSON."""
    content = json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    return httpx.MockTransport(lambda _: httpx.Response(status_code, content=content, headers=headers))


def result(name: str, status: Status | str = Status.OK, **measurements: float) -> CheckResult:
    """A canned result, for tests of classification and summaries."""
    return CheckResult(name, Status(status), f"{name} is {Status(status).value}", measurements=measurements)
