"""`postgres.check_service_pool`: how the service's pool metrics are judged."""

from __future__ import annotations

import httpx

from checks import Status, postgres
from checks.testing import prometheus_transport, targets


def _pool(waiting: float | None, in_use: float, limit: float | None) -> httpx.Client:
    def answer(promql: str) -> list[tuple[dict[str, str], float]]:
        if "db_pool_waiting" in promql:
            return [] if waiting is None else [({}, waiting)]
        if "in_use" in promql:
            return [({}, in_use)]
        return [] if limit is None else [({}, limit)]

    return httpx.Client(transport=prometheus_transport(answer))


def test_no_waiting_and_room_in_the_pool_is_ok() -> None:
    result = postgres.check_service_pool(targets(), client=_pool(0, 1, 5))
    assert result.status is Status.OK


def test_requests_waiting_for_a_connection_is_crit() -> None:
    result = postgres.check_service_pool(targets(), client=_pool(4, 5, 5))
    assert result.status is Status.CRIT
    assert result.evidence["waiting_max"] == 4


def test_a_full_pool_without_waiters_is_warn() -> None:
    assert postgres.check_service_pool(targets(), client=_pool(0, 5, 5)).status is Status.WARN


def test_missing_metrics_are_unknown() -> None:
    assert postgres.check_service_pool(targets(), client=_pool(None, 0, None)).status is Status.UNKNOWN


def test_prometheus_down_is_unknown_not_an_exception() -> None:
    client = httpx.Client(transport=prometheus_transport({}, error="boom"))
    result = postgres.check_service_pool(targets(), client=client)
    assert result.status is Status.UNKNOWN
    assert "error" in result.evidence


def test_exporter_reports_the_database_down() -> None:
    client = httpx.Client(transport=prometheus_transport({'min(pg_up{job="postgres"})': [({}, 0)]}))
    assert postgres.check_exporter(targets(), client=client).status is Status.CRIT
    client = httpx.Client(transport=prometheus_transport({'min(pg_up{job="postgres"})': [({}, 1)]}))
    assert postgres.check_exporter(targets(), client=client).status is Status.OK
    client = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert postgres.check_exporter(targets(), client=client).status is Status.UNKNOWN
