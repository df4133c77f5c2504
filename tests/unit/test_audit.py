"""`audit.check_cross_user_reads` with a fake Prometheus."""

from __future__ import annotations

import httpx

from checks import Status, audit
from checks.testing import prometheus_transport, targets


def _reads(*pairs: tuple[str, float]) -> httpx.Client:
    return httpx.Client(transport=prometheus_transport(lambda _: [({"key_prefix": k}, v) for k, v in pairs]))


def test_a_key_reading_other_users_fast_is_crit_and_named() -> None:
    result = audit.check_cross_user_reads(targets(), client=_reads(("dbk_1234", 9.5), ("dbk_9", 0.01)))
    assert result.status is Status.CRIT
    assert "dbk_1234" in result.summary
    assert "dbk_9 " not in result.summary


def test_no_series_is_ok_because_the_counter_appears_on_first_use() -> None:
    assert audit.check_cross_user_reads(targets(), client=_reads()).status is Status.OK


def test_prometheus_down_is_unknown() -> None:
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert audit.check_cross_user_reads(targets(), client=broken).status is Status.UNKNOWN
