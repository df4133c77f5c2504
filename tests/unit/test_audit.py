"""`audit.check_cross_user_reads` with a fake Prometheus."""

from __future__ import annotations

import socket

import httpx

from checks import Gate, Status
from checks.reference_service import admin, audit
from checks.signals import Signals
from checks.testing import prometheus_transport, targets


def _reads(
    *pairs: tuple[str, float], exported: tuple[str, ...] = ("cross_user_reads_total",)
) -> httpx.Client:
    series = [({"key_prefix": k}, v) for k, v in pairs]
    return httpx.Client(transport=prometheus_transport(lambda _: series, exported=exported))


def test_a_key_reading_other_users_fast_is_crit_and_named() -> None:
    result = audit.check_cross_user_reads(targets(), client=_reads(("dbk_1234", 9.5), ("dbk_9", 0.01)))
    assert result.status is Status.CRIT
    assert "dbk_1234" in result.summary
    assert "dbk_9 " not in result.summary


def test_no_series_of_an_exported_counter_is_ok_because_it_appears_on_first_use() -> None:
    assert audit.check_cross_user_reads(targets(), client=_reads()).status is Status.OK


def test_no_series_of_a_counter_the_service_does_not_export_is_unknown_not_ok() -> None:
    result = audit.check_cross_user_reads(targets(), client=_reads(exported=("http_requests_total",)))
    assert result.status is Status.UNKNOWN
    assert "signals" in result.remedy


def test_where_the_service_counts_no_cross_user_reads_the_check_does_not_apply() -> None:
    result = audit.check_cross_user_reads(targets(signals=Signals()), client=_reads())
    assert result.status is Status.NOT_APPLICABLE


def test_prometheus_down_is_unknown() -> None:
    broken = httpx.Client(transport=prometheus_transport({}, error="boom"))
    assert audit.check_cross_user_reads(targets(), client=broken).status is Status.UNKNOWN


def test_an_audit_log_that_cannot_be_read_is_unknown_so_no_key_is_revoked_on_it() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = targets(postgres=f"postgresql://app@127.0.0.1:{port}/app")
    fanout = audit.check_key_fanout(down)
    assert fanout.status is Status.UNKNOWN
    assert "cannot read the audit log" in fanout.summary
    assert audit.check_new_addresses(down).status is Status.UNKNOWN
    outcome = Gate.for_targets(down, apply=True).run(admin.revoke_api_key(down, 1), evidence=[fanout])
    assert outcome.state == "skipped"
