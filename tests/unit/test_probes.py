"""How the probes read answers: health JSON and Prometheus vectors, through fake transports."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx
import pytest

from checks import ProbeError, Status, http, prometheus
from checks.targets import QueryDefaults
from checks.testing import alert, json_transport, prometheus_transport, targets

HEALTHY = {
    "status": "ok",
    "version": "1.2.3",
    "dependencies": {"database": {"status": "ok"}, "redis": {"status": "ok"}},
}


def test_healthy_service_is_ok() -> None:
    client = httpx.Client(transport=json_transport(200, HEALTHY))
    outcome = http.check_health(targets(), client=client)
    assert outcome.status is Status.OK
    assert outcome.evidence["version"] == "1.2.3"


def test_degraded_dependency_is_a_warning_that_names_it() -> None:
    body = {
        **HEALTHY,
        "status": "degraded",
        "dependencies": {"redis": {"status": "down", "error": "refused"}},
    }
    outcome = http.check_health(targets(), client=httpx.Client(transport=json_transport(503, body)))
    assert outcome.status is Status.WARN
    assert "redis: refused" in outcome.summary


def test_service_reporting_itself_down_is_critical_with_zero_availability() -> None:
    body = {**HEALTHY, "status": "down", "dependencies": {}}
    outcome = http.check_health(targets(), client=httpx.Client(transport=json_transport(503, body)))
    assert outcome.status is Status.CRIT
    assert outcome.measurements == {"availability": 0.0}


def test_service_down_for_a_named_dependency_leaves_the_impact_to_that_dependencys_checks() -> None:
    """An upstream outage read "down" (availability 0, SEV1) while calls still failed and "degraded"
    once the circuit opened: the level must come from the dependency and its fallback."""
    body = {**HEALTHY, "status": "down", "dependencies": {"upstream": {"status": "down", "error": "503"}}}
    outcome = http.check_health(targets(), client=httpx.Client(transport=json_transport(503, body)))
    assert outcome.status is Status.CRIT
    assert outcome.evidence["failing"] == {"upstream": "503"}
    assert outcome.measurements == {}


def test_when_nothing_listens_then_health_is_crit_not_an_exception() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = http.check_health(f"http://127.0.0.1:{port}", timeout_s=2)
    assert outcome.status is Status.CRIT
    assert "unreachable" in outcome.summary
    assert outcome.measurements["availability"] == 0.0


def test_up_is_crit_when_a_target_is_down() -> None:
    answers = {'up{job="api"}': [({"instance": "a"}, 1), ({"instance": "b"}, 0)]}
    client = httpx.Client(transport=prometheus_transport(answers))
    outcome = prometheus.check_up(targets(), "api", client=client)
    assert outcome.status is Status.CRIT
    assert outcome.evidence["down"] == ["b"]
    assert outcome.measurements["availability"] == 0.5


def test_up_uses_the_environments_job_name() -> None:
    answers = {'up{job="reference-api"}': [({"instance": "a"}, 1)]}
    client = httpx.Client(transport=prometheus_transport(answers))
    outcome = prometheus.check_up(targets(prometheus_jobs={"api": "reference-api"}), "api", client=client)
    assert outcome.status is Status.OK


def test_up_without_any_target_is_unknown() -> None:
    client = httpx.Client(transport=prometheus_transport({}))
    assert prometheus.check_up(targets(), client=client).status is Status.UNKNOWN


def test_prometheus_refusing_a_query_is_a_probe_error_with_its_reason() -> None:
    client = httpx.Client(transport=prometheus_transport({}, error="parse error at char 3"))
    with pytest.raises(ProbeError, match="parse error at char 3"):
        prometheus.query(targets(), "up{", client=client)
    assert prometheus.check_up(targets(), client=client).status is Status.UNKNOWN


def _by_metric(
    ratio: float | None, traffic: float = 5.0
) -> Callable[[str], list[tuple[dict[str, str], float]]]:
    """Answers for error-ratio queries: the ratio query, and the traffic query asked when it is empty."""

    def answer(promql: str) -> list[tuple[dict[str, str], float]]:
        if 'status=~"5.."' in promql:
            return [] if ratio is None else [({}, ratio)]
        return [({}, traffic)] if traffic else []

    return answer


def test_error_ratio_uses_the_environments_rate_window() -> None:
    seen: list[str] = []

    def answer(promql: str) -> list[tuple[dict[str, str], float]]:
        seen.append(promql)
        return [({}, 0.2)]

    client = httpx.Client(transport=prometheus_transport(answer))
    result = prometheus.check_error_ratio(targets(query=QueryDefaults(rate_window="15s")), client=client)
    assert result.status is Status.CRIT
    assert result.measurements == {"error_ratio": 0.2}
    assert "[15s]" in seen[0]


def test_no_5xx_series_with_traffic_means_zero_errors_not_unknown() -> None:
    client = httpx.Client(transport=prometheus_transport(_by_metric(None)))
    result = prometheus.check_error_ratio(targets(), client=client)
    assert result.status is Status.OK
    assert result.measurements == {"error_ratio": 0.0}


def test_no_traffic_at_all_is_unknown() -> None:
    client = httpx.Client(transport=prometheus_transport(_by_metric(None, traffic=0)))
    assert prometheus.check_error_ratio(targets(), client=client).status is Status.UNKNOWN


def test_p95_latency_feeds_the_severity_measurement() -> None:
    client = httpx.Client(transport=prometheus_transport(lambda _: [({}, 8.5)]))
    result = prometheus.check_latency_quantile(targets(), client=client)
    assert result.status is Status.CRIT
    assert result.measurements == {"p95_latency_seconds": 8.5}


def test_firing_alerts_lists_names_and_runbooks_and_ignores_pending() -> None:
    alerts = [alert("ServiceDown", runbook="https://runbooks/service-down/"), alert("Other", state="pending")]
    client = httpx.Client(transport=prometheus_transport({}, alerts=alerts))
    result = prometheus.check_firing_alerts(targets(), client=client)
    assert result.status is Status.CRIT
    assert result.summary == "firing: ServiceDown"
    assert result.evidence["alerts"][0]["runbook"] == "https://runbooks/service-down/"
    only_other = prometheus.check_firing_alerts(targets(), names=["Other"], client=client)
    assert only_other.status is Status.OK


@pytest.mark.parametrize(
    ("indicator", "status"), [("none", Status.OK), ("minor", Status.WARN), ("major", Status.CRIT)]
)
def test_status_page_indicator_maps_to_a_status(indicator: str, status: Status) -> None:
    body = {
        "status": {"indicator": indicator, "description": "words"},
        "components": [{"name": "API", "status": "operational"}, {"name": "Batch", "status": "major_outage"}],
    }
    client = httpx.Client(transport=json_transport(200, body))
    result = http.check_status_page("http://status.test/api/v2/status.json", client=client)
    assert result.status is status
    assert result.evidence["degraded_components"] == {"Batch": "major_outage"}


def test_latency_sample_counts_failures_and_reports_quantiles() -> None:
    calls = iter([200] * 18 + [503, 503])
    transport = httpx.MockTransport(lambda _: httpx.Response(next(calls), json={}))
    result = http.check_latency("http://api.test", requests=20, client=httpx.Client(transport=transport))
    assert result.evidence["errors"] == {"http 503": 2}
    assert result.status is Status.WARN  # failures make a fast service suspect
    assert result.measurements["error_ratio"] == 0.1
