"""Signals: checks read an environment's own metric names, scoped to its jobs; no data is never OK."""

from __future__ import annotations

import httpx
import pytest

from checks import ConfigError, Status, deploy, postgres, prometheus, redis
from checks._result import ladder
from checks.reference_service import upstream
from checks.signals import DEFAULTS, Signals
from checks.targets import HealthContract, QueryDefaults, Targets
from checks.testing import prometheus_transport, targets

# A service of another team: its own metric names, `code` for the status, `path` for the route.
ORDERS = Signals.from_policy(
    {
        "requests": {"metric": "orders_http_requests_total", "labels": {"status": "code", "route": "path"}},
        "request_duration": {"metric": "orders_request_seconds", "labels": {"route": "path"}},
        "cache_requests": None,
    }
)
TOTAL = 'sum(rate(orders_http_requests_total{job="orders"}[5m]))'
ERRORS = f'sum(rate(orders_http_requests_total{{job="orders", code=~"5.."}}[5m])) / {TOTAL}'


def orders(answers: dict[str, float], *, age_s: float | None = 1.0) -> httpx.Client:
    series = {query: [({}, value)] for query, value in answers.items()}
    return httpx.Client(transport=prometheus_transport(series, age_s=age_s))


def orders_targets(**query: float) -> Targets:
    return targets(signals=ORDERS, prometheus_jobs={"api": "orders"}, query=QueryDefaults(**query))


def test_the_error_ratio_is_read_from_the_environments_own_names_and_job() -> None:
    result = prometheus.check_error_ratio(orders_targets(), client=orders({ERRORS: 0.2, TOTAL: 5.0}))
    assert result.status is Status.CRIT
    assert result.measurements["error_ratio"] == 0.2


def test_with_the_reference_names_on_that_stack_nothing_is_read_and_nothing_is_ok() -> None:
    client = orders({ERRORS: 0.0, TOTAL: 5.0})
    result = prometheus.check_error_ratio(targets(prometheus_jobs={"api": "orders"}), client=client)
    assert result.status is Status.UNKNOWN
    assert "Map it under signals in environments.yml" in result.remedy
    assert result.evidence["metric"] == "http_requests_total"


def test_a_signal_the_environment_does_not_export_makes_its_checks_not_applicable() -> None:
    result = prometheus.check_cache_hit_ratio(orders_targets(), client=orders({}))
    assert result.status is Status.NOT_APPLICABLE
    assert result.summary == "not applicable here: needs signal 'cache_requests' " + (
        "(map it under signals in environments.yml)"
    )


@pytest.mark.parametrize(("age_s", "why"), [(None, "no current sample"), (31.0, "31 s old")])
def test_a_window_that_shows_the_past_is_unknown_not_ok(age_s: float | None, why: str) -> None:
    client = orders({ERRORS: 0.0, TOTAL: 5.0}, age_s=age_s)
    result = prometheus.check_error_ratio(orders_targets(max_sample_age_seconds=30), client=client)
    assert result.status is Status.UNKNOWN
    assert why in result.summary
    assert "max_sample_age_seconds" in result.remedy


def test_a_window_as_old_as_its_limit_is_still_current() -> None:
    client = orders({ERRORS: 0.0, TOTAL: 5.0}, age_s=30.0)
    assert prometheus.check_error_ratio(orders_targets(max_sample_age_seconds=30), client=client).ok


def test_every_default_follows_the_conventions_or_is_absent() -> None:
    for signal in DEFAULTS.values():
        if signal.metric is None:
            continue
        if signal.kind == "counter":
            assert signal.metric.endswith("_total"), signal
        if signal.kind == "histogram":
            assert signal.metric.endswith("_seconds"), signal


def test_an_unknown_signal_in_policy_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="unknown signal 'request_count'"):
        Signals.from_policy({"request_count": {"metric": "x_total"}})


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.0199, Status.OK),
        (0.02, Status.WARN),
        (0.05, Status.WARN),
        (0.0999, Status.WARN),
        (0.10, Status.CRIT),
    ],
)
def test_the_error_ratio_bands_start_at_their_thresholds(ratio: float, expected: Status) -> None:
    client = orders({ERRORS: ratio, TOTAL: 5.0})
    result = prometheus.check_error_ratio(orders_targets(), warn=0.02, crit=0.10, client=client)
    assert result.status is expected


@pytest.mark.parametrize(
    ("value", "worse", "expected"),
    [
        (0.9, "above", Status.OK),
        (1.0, "above", Status.WARN),
        (2.0, "above", Status.CRIT),
        (3.0, "below", Status.OK),
        (2.0, "below", Status.OK),
        (1.5, "below", Status.WARN),
        (0.5, "below", Status.CRIT),
    ],
)
def test_the_one_ladder(value: float, worse: str, expected: Status) -> None:
    if worse == "above":
        assert ladder(value, warn=1.0, crit=2.0) is expected
    else:
        assert ladder(value, warn=2.0, crit=1.0, worse="below") is expected


def test_without_named_customer_routes_every_route_but_health_and_metrics_counts() -> None:
    seen: list[str] = []

    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        seen.append(query)
        return [({}, 1.0 if "5.." in query else 4.0)]

    client = httpx.Client(transport=prometheus_transport(answer))
    t = targets(
        signals=ORDERS, prometheus_jobs={"api": "orders"}, health=HealthContract(path="/actuator/health")
    )
    result = prometheus.check_route_error_ratio(t, client=client)
    assert result.status is Status.CRIT
    assert 'path!~"/actuator/health|/metrics"' in seen[0]


def test_the_reference_service_names_its_customer_routes_in_policy() -> None:
    client = httpx.Client(transport=prometheus_transport(lambda q: [({}, 1.0)]))
    result = prometheus.check_route_error_ratio(targets(), client=client)
    assert 'route=~"/api/.*"' in result.evidence["routes"]


def test_a_service_without_timed_upstream_calls_is_judged_on_its_own_latency() -> None:
    client = httpx.Client(transport=prometheus_transport(lambda q: [({}, 9.0)]))
    result = upstream.check_latency_source(orders_targets(), warn_s=1.0, crit_s=2.0, client=client)
    assert result.status is Status.CRIT
    assert "the time is spent in the service" in result.summary
    assert result.name == "latency-source"


def test_pool_and_cache_checks_do_not_apply_where_their_signals_are_not_exported() -> None:
    client = orders({})
    assert postgres.check_service_pool(orders_targets(), client=client).status is Status.NOT_APPLICABLE
    assert redis.check_ttls(orders_targets()).status is Status.NOT_APPLICABLE


def test_a_deployment_needs_every_secret_the_environment_declares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORDERS_TOKEN", raising=False)
    declared = targets(secret_variables={"orders_token": "ORDERS_TOKEN"})
    result = deploy.check_environment(declared, endpoints=("api",))
    assert result.status is Status.CRIT
    assert result.evidence["missing"] == ["secret orders_token"]
    monkeypatch.setenv("ORDERS_TOKEN", "x")
    assert deploy.check_environment(declared, endpoints=("api",)).ok
