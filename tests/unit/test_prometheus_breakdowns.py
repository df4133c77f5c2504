"""How the per-route breakdowns read Prometheus vectors, through a fake transport."""

from __future__ import annotations

import httpx

from checks import Status, prometheus
from checks.testing import prometheus_transport, targets


def routes(query: str) -> list[tuple[dict[str, str], float]]:
    if 'status=~"5.."' in query:
        return [
            ({"route": "/api/analyze", "status": "500"}, 1.0),
            ({"route": "/api/analyze", "status": "502"}, 0.5),
        ]
    if "histogram_quantile" in query:
        return [
            ({"route": "/api/analyze"}, 2.6),
            ({"route": "/api/skills"}, 0.05),
            ({"route": "/health"}, float("nan")),
        ]
    return [({"route": "/api/analyze"}, 3.0), ({"route": "/api/skills"}, 1.0)]


CLIENT = httpx.Client(transport=prometheus_transport(routes))


def test_errors_by_route_names_the_failing_route_and_its_codes() -> None:
    result = prometheus.check_errors_by_route(targets(), client=CLIENT)
    assert result.status is Status.CRIT
    assert result.evidence["routes"]["/api/analyze"]["statuses"] == {"500": 1.0, "502": 0.5}
    assert "/api/skills" not in result.evidence["routes"]


def test_slowest_routes_come_first_and_nan_is_dropped() -> None:
    assert [r for r, _ in prometheus.slowest_routes(targets(), client=CLIENT)] == [
        "/api/analyze",
        "/api/skills",
    ]
    result = prometheus.check_slowest_routes(targets(), client=CLIENT)
    assert result.status is Status.WARN
    assert "/api/analyze" in result.summary


def test_without_traffic_the_breakdowns_are_unknown() -> None:
    empty = httpx.Client(transport=prometheus_transport({}))
    assert prometheus.check_errors_by_route(targets(), client=empty).status is Status.UNKNOWN
    assert prometheus.check_slowest_routes(targets(), client=empty).status is Status.UNKNOWN


def test_when_prometheus_refuses_then_breakdowns_are_unknown() -> None:
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert prometheus.check_errors_by_route(targets(), client=broken).status is Status.UNKNOWN


def test_route_error_ratio_counts_only_the_matching_routes() -> None:
    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        assert 'route=~"/api/.*"' in query
        return [({}, 1.0 if "5.." in query else 4.0)]

    client = httpx.Client(transport=prometheus_transport(answer))
    result = prometheus.check_route_error_ratio(targets(), client=client)
    assert result.status is Status.CRIT
    assert result.measurements["error_ratio"] == 0.25


def test_cold_cache_is_a_warning_under_its_floor() -> None:
    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        return [({}, 0.5 if 'result="hit"' in query else 5.0)]

    result = prometheus.check_cache_hit_ratio(
        targets(), client=httpx.Client(transport=prometheus_transport(answer))
    )
    assert result.status is Status.WARN
    assert result.evidence["hit_ratio"] == 0.1
