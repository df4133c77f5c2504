"""How the upstream verdicts read Prometheus and the status page, through fake transports."""

from __future__ import annotations

import httpx
import pytest

from checks import Status
from checks.reference_service import upstream
from checks.signals import Signals
from checks.testing import json_transport, prometheus_transport, targets


def outcomes(**rates: float) -> httpx.Client:
    series = [({"outcome": name}, value) for name, value in rates.items()]
    return httpx.Client(
        transport=prometheus_transport(lambda q: series if "upstream_requests_total" in q else ())
    )


def test_when_most_upstream_calls_fail_then_upstream_errors_is_crit() -> None:
    result = upstream.check_upstream_errors(targets(), client=outcomes(ok=0.2, error=1.5, timeout=0.3))
    assert result.status is Status.CRIT
    assert result.evidence["share"] == pytest.approx(0.9)


def test_when_current_samples_show_no_upstream_call_then_nothing_failed() -> None:
    result = upstream.check_upstream_errors(targets(), client=outcomes(ok=0.0, error=0.0))
    assert result.status is Status.OK
    assert "no upstream calls" in result.summary


def test_without_the_upstream_metric_nothing_is_said_to_be_fine() -> None:
    result = upstream.check_upstream_errors(targets(), client=outcomes())
    assert result.status is Status.UNKNOWN
    assert "signals" in result.remedy


def test_upstream_calls_from_a_window_whose_samples_stopped_are_unknown() -> None:
    series = [({"outcome": "ok"}, 1.0)]
    client = httpx.Client(transport=prometheus_transport(lambda q: series, age_s=None))
    assert upstream.check_upstream_errors(targets(), client=client).status is Status.UNKNOWN


def test_where_the_service_has_no_upstream_signal_the_check_does_not_apply() -> None:
    result = upstream.check_upstream_errors(targets(signals=Signals()), client=outcomes(ok=1.0))
    assert result.status is Status.NOT_APPLICABLE


def test_429s_are_judged_apart_from_errors() -> None:
    client = outcomes(ok=1.0, rate_limited=1.0)
    assert upstream.check_rate_limited(targets(), client=client).status is Status.CRIT
    assert upstream.check_upstream_errors(targets(), client=client).status is Status.OK


def test_timeouts_alone_are_their_own_verdict() -> None:
    result = upstream.check_upstream_timeouts(targets(), client=outcomes(ok=1.0, timeout=1.0))
    assert result.status is Status.CRIT


def test_when_prometheus_is_down_then_verdicts_are_unknown_not_raised() -> None:
    client = httpx.Client(
        transport=httpx.MockTransport(lambda r: (_ for _ in ()).throw(httpx.ConnectError("x")))
    )
    for check in (
        upstream.check_upstream_errors,
        upstream.check_rate_limited,
        upstream.check_circuit_breaker,
        upstream.check_fallback_share,
        upstream.check_upstream_latency,
    ):
        result = check(targets(), client=client)
        assert result.status is Status.UNKNOWN, check.__name__
        assert "error" in result.evidence


def circuit(state: float, forced: float) -> httpx.Client:
    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        return [({}, forced if "forced" in query else state)]

    return httpx.Client(transport=prometheus_transport(answer))


@pytest.mark.parametrize(
    ("state", "forced", "expected"),
    [(0, 0, Status.OK), (0.5, 0, Status.WARN), (1, 0, Status.CRIT), (1, 1, Status.WARN)],
)
def test_circuit_breaker_opened_by_failures_is_crit_but_held_open_is_a_warning(
    state: float, forced: float, expected: Status
) -> None:
    assert upstream.check_circuit_breaker(targets(), client=circuit(state, forced)).status is expected


def test_fallback_share_is_fallbacks_over_analyses() -> None:
    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        return [({}, 3.0 if "fallback" in query else 4.0)]

    result = upstream.check_fallback_share(
        targets(), client=httpx.Client(transport=prometheus_transport(answer))
    )
    assert result.status is Status.CRIT
    assert result.evidence["share"] == 0.75


def test_slow_upstream_is_crit_from_its_threshold() -> None:
    client = httpx.Client(transport=prometheus_transport(lambda q: [({}, 6.0)]))
    assert upstream.check_upstream_latency(targets(), client=client).status is Status.CRIT


def test_status_page_major_outage_is_crit() -> None:
    body = {"status": {"indicator": "major", "description": "Major Service Outage"}}
    client = httpx.Client(transport=json_transport(200, body))
    result = upstream.check_status_page(targets(), url="http://status.test/api/v2/status.json", client=client)
    assert result.status is Status.CRIT


def test_without_a_status_page_the_check_does_not_apply_and_says_how_to_set_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(upstream.STATUS_PAGE_VARIABLE, raising=False)
    result = upstream.check_status_page(targets("staging"))
    assert result.status is Status.NOT_APPLICABLE
    assert upstream.STATUS_PAGE_VARIABLE in result.summary


def test_the_status_page_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(upstream.STATUS_PAGE_VARIABLE, "https://status.provider.test/api/v2/status.json")
    assert (
        upstream.status_page_url(targets("production")) == "https://status.provider.test/api/v2/status.json"
    )


def latencies(api: float, provider: float | None) -> httpx.Client:
    def answer(query: str) -> list[tuple[dict[str, str], float]]:
        if "upstream_request_duration" in query:
            return [] if provider is None else [({}, provider)]
        return [({}, api)]

    return httpx.Client(transport=prometheus_transport(answer))


def test_slow_service_with_a_fast_provider_spends_its_time_inside() -> None:
    result = upstream.check_latency_source(targets(), client=latencies(2.9, 0.05))
    assert result.status is Status.CRIT
    assert result.measurements["p95_latency_seconds"] == 2.9


def test_slow_provider_is_named_as_the_slow_part_not_the_service() -> None:
    result = upstream.check_latency_source(targets(), client=latencies(3.0, 2.8))
    assert result.status is Status.WARN
    assert "upstream is the slow part" in result.summary


def test_fast_service_is_ok_whatever_the_provider() -> None:
    assert upstream.check_latency_source(targets(), client=latencies(0.1, None)).status is Status.OK
