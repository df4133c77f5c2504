"""The health contract: HTTP status first, then the body shapes in common use."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from checks import Status, http
from checks.targets import HealthContract
from checks.testing import json_transport, targets


def judged(code: int, body: Any, **contract: Any) -> Any:
    client = httpx.Client(transport=json_transport(code, body))
    return http.check_health(targets(health=HealthContract(**contract)), client=client)


@pytest.mark.parametrize(
    "body",
    [
        {"status": "UP"},  # Spring Boot
        {"status": "pass"},  # the IETF health check draft
        {"status": "healthy"},
        {"status": "ok", "version": "1.2.3"},
        {"status": "OK"},
    ],
    ids=["spring", "ietf", "healthy", "ok", "upper-case"],
)
def test_healthy_bodies_in_common_use_are_ok(body: dict[str, str]) -> None:
    result = judged(200, body)
    assert result.status is Status.OK, result.summary
    assert "availability" not in result.measurements


@pytest.mark.parametrize(
    ("code", "body", "expected"),
    [
        (503, {"status": "DOWN"}, Status.CRIT),
        (503, {"status": "OUT_OF_SERVICE"}, Status.CRIT),
        (503, {"status": "fail"}, Status.CRIT),
        (200, {"status": "warn"}, Status.WARN),
        (503, {"status": "degraded"}, Status.WARN),
        (200, {"status": "down"}, Status.CRIT),  # the body is believed when it says worse
        (503, {"status": "ok"}, Status.CRIT),  # and the server when it says worse
    ],
)
def test_unhealthy_words_set_the_band(code: int, body: dict[str, str], expected: Status) -> None:
    assert judged(code, body).status is expected


def test_a_crit_answer_reads_as_no_availability_and_a_warn_one_does_not() -> None:
    assert judged(503, {"status": "DOWN"}).measurements == {"availability": 0.0}
    assert judged(503, {"status": "degraded"}).measurements == {}


@pytest.mark.parametrize(("code", "expected"), [(200, Status.OK), (204, Status.OK), (500, Status.CRIT)])
def test_without_a_status_word_the_http_status_decides(code: int, expected: Status) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(code, text="fine")))
    assert http.check_health(targets(), client=client).status is expected


def test_an_unknown_word_is_judged_by_the_http_status_and_says_how_to_teach_it() -> None:
    result = judged(200, {"status": "serene"})
    assert result.status is Status.OK
    assert "does not know" in result.summary


@pytest.mark.parametrize("code", [401, 403, 404])
def test_a_client_error_without_a_known_word_is_unknown_and_names_the_setting(code: int) -> None:
    result = judged(code, {"detail": "Not Found"})
    assert result.status is Status.UNKNOWN
    assert "health.path" in result.remedy


def test_the_environment_adds_its_own_words() -> None:
    assert judged(200, {"status": "nominal"}, ok=("nominal",)).status is Status.OK
    assert judged(200, {"status": "wobbly"}, warn=("wobbly",)).status is Status.WARN
    assert judged(200, {"status": "sinking"}, crit=("sinking",)).status is Status.CRIT


def test_the_environment_sets_the_health_path() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"status": "UP"})

    client = httpx.Client(transport=httpx.MockTransport(answer))
    result = http.check_health(targets(health=HealthContract(path="/actuator/health")), client=client)
    assert result.ok
    assert seen == ["/actuator/health"]


@pytest.mark.parametrize(
    ("body", "failing"),
    [
        ({"status": "DOWN", "components": {"db": {"status": "DOWN"}, "ping": {"status": "UP"}}}, "db"),
        (
            {
                "status": "fail",
                "checks": {"db:up": [{"status": "pass"}, {"status": "fail", "output": "gone"}]},
            },
            "db:up",
        ),
        (
            {
                "status": "down",
                "dependencies": {"db": {"status": "down", "error": "gone"}, "redis": {"status": "ok"}},
            },
            "db",
        ),
    ],
    ids=["spring-components", "ietf-checks", "dependencies"],
)
def test_the_failing_dependency_is_named_whatever_map_carries_it(body: dict[str, Any], failing: str) -> None:
    result = judged(503, body)
    assert result.status is Status.CRIT
    assert list(result.evidence["failing"]) == [failing]
    assert failing in result.summary
