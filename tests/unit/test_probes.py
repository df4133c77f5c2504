"""How the probes read answers: health JSON and Prometheus vectors, through fake transports."""

from __future__ import annotations

import socket

import httpx
import pytest

from checks import ProbeError, Status, http, prometheus
from checks.testing import json_transport, prometheus_transport, targets

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


def test_service_reporting_down_is_critical_with_zero_availability() -> None:
    body = {**HEALTHY, "status": "down", "dependencies": {"database": {"status": "down", "error": "timeout"}}}
    outcome = http.check_health(targets(), client=httpx.Client(transport=json_transport(503, body)))
    assert outcome.status is Status.CRIT
    assert outcome.measurements == {"availability": 0.0}


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
