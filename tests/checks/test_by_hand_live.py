"""What the site shows a human to run by hand, run against the sandbox's real servers: the PromQL
gives what the check measured, the SQL runs in PostgreSQL, and the command lines work as pasted."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from checks import CheckResult, Targets, http, postgres, prometheus, redis
from checks.by_hand import Manual, manuals, shell
from checks.reference_service import audit, costs, usage_log
from tests.drills.waiting import wait_for

pytestmark = pytest.mark.sandbox


def value(targets: Targets, promql: str) -> float:
    """The single value of `promql`; 0 for no sample (a 5xx share with no 5xx at all)."""
    samples = prometheus.query(targets, promql)
    assert len(samples) <= 1, samples
    return samples[0].value if samples else 0.0


def up_availability(targets: Targets, promql: str) -> float:
    samples = prometheus.query(targets, promql)
    assert samples, f"{promql}: no scrape target"
    return 1 - sum(1 for s in samples if s.value < 1) / len(samples)


def just_scraped(targets: Targets, *, within_s: float = 0.4, timeout_s: float = 10.0) -> None:
    """Return right after Prometheus scraped the api: the most time before the next scrape."""
    selector = f'up{{job="{targets.job("api")}"}}'
    deadline = time.monotonic() + timeout_s
    while (age := prometheus.sample_age(targets, selector)) is None or age > within_s:
        assert time.monotonic() < deadline, f"no fresh scrape of {selector} in {timeout_s:g} s"
        time.sleep(0.05)


def same_scrape(
    targets: Targets, read_manual: Callable[[], float], run_check: Callable[[], float], *, attempts: int = 40
) -> tuple[float, float]:
    """The by-hand value and the check's, from the same scrape: each try starts right after a
    scrape, reads the by-hand query before and after the check, and the pair is kept once both
    readings agree (no scrape in between; on a loaded machine a check can take longer)."""
    for _ in range(attempts):
        just_scraped(targets)
        before = read_manual()
        measured = run_check()
        if read_manual() == before:
            return before, measured
    raise AssertionError(f"the by-hand value kept changing across {attempts} tries")


MEASURED: list[tuple[Callable[..., CheckResult], Callable[[CheckResult], float], Callable[..., float]]] = [
    (prometheus.check_error_ratio, lambda r: r.measurements["error_ratio"], value),
    (prometheus.check_route_error_ratio, lambda r: r.measurements["error_ratio"], value),
    (prometheus.check_latency_quantile, lambda r: r.measurements["p95_latency_seconds"], value),
    (prometheus.check_up, lambda r: r.measurements["availability"], up_availability),
    (postgres.check_exporter, lambda r: r.evidence["pg_up"], value),
]


@pytest.mark.parametrize(("check", "measured", "read"), MEASURED, ids=lambda v: getattr(v, "__name__", ""))
def test_the_promql_shown_gives_what_the_check_measured(
    runbook_targets: Targets,
    check: Callable[..., CheckResult],
    measured: Callable[[CheckResult], float],
    read: Callable[[Targets, str], float],
) -> None:
    first = (manuals(check, runbook_targets) or [])[0]
    assert first.kind == "promql"

    def measures() -> bool:
        return check(runbook_targets).status.value in ("OK", "WARN", "CRIT")

    # After a drill that restarted the service, its window may be empty or stale for a while.
    wait_for(measures, timeout_s=60, what=f"{check.__name__} to measure something again")

    def run_check() -> float:
        result = check(runbook_targets)
        assert result.status.value in ("OK", "WARN", "CRIT"), result.summary  # it measured something
        return measured(result)

    by_hand, by_check = same_scrape(runbook_targets, lambda: read(runbook_targets, first.text), run_check)
    assert math.isclose(by_hand, by_check, rel_tol=1e-9, abs_tol=1e-12), (first.text, by_hand, by_check)


SQL_CHECKS: list[tuple[Callable[..., CheckResult], dict[str, Any]]] = [
    (postgres.check_connections, {}),
    (postgres.check_idle_in_transaction, {"older_than_s": 0}),
    (postgres.check_long_running_queries, {"warn_s": 0}),
    (postgres.check_blocked_queries, {}),
    (postgres.check_reachable, {}),
    (postgres.check_server, {}),
    (usage_log.check_errors_by_type, {}),
    (usage_log.check_failing_skill, {}),
    (usage_log.check_slow_skill, {}),
    (costs.check_usage_cost, {}),
    (costs.check_expensive_skills, {}),
    (audit.check_key_fanout, {}),
    (audit.check_new_addresses, {}),
]


@pytest.mark.parametrize(("check", "args"), SQL_CHECKS, ids=lambda v: getattr(v, "__name__", ""))
def test_the_sql_shown_runs_in_postgresql(
    runbook_targets: Targets, check: Callable[..., CheckResult], args: dict[str, Any]
) -> None:
    statements = [m for m in manuals(check, runbook_targets, args) or [] if m.kind == "sql"]
    assert statements
    password = runbook_targets.optional_secret("postgres_password")
    with psycopg.connect(runbook_targets.endpoint("postgres"), autocommit=True, password=password) as conn:
        for manual in statements:
            conn.execute(manual.text).fetchall()  # raises on SQL that PostgreSQL refuses


def test_the_sql_shown_reads_the_limit_the_check_reports(runbook_targets: Targets) -> None:
    _, limits = manuals(postgres.check_connections, runbook_targets) or []
    with psycopg.connect(runbook_targets.endpoint("postgres"), autocommit=True) as conn:
        row = conn.execute(limits.text).fetchone()
    assert row is not None
    result = postgres.check_connections(runbook_targets)
    assert row[0] == result.evidence["max_connections"]
    assert row[0] - row[1] == result.evidence["available"]


def run(command: str) -> str:
    """Run a command line as a responder pastes it into a shell; its output."""
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def needs(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"no {tool} here (scripts/install-os-packages installs it)")


def only(found: list[Manual] | None, kind: str) -> Manual:
    return next(m for m in found or [] if m.kind == kind)


def test_the_command_lines_work_as_pasted(runbook_targets: Targets) -> None:
    for tool in ("curl", "psql", "redis-cli"):
        needs(tool)
    up = only(manuals(prometheus.check_up, runbook_targets), "promql")
    assert '"status":"success"' in run(shell(runbook_targets, up))
    holders = only(manuals(postgres.check_connections, runbook_targets), "sql")
    assert "application" in run(shell(runbook_targets, holders))  # the header of psql's table
    assert "PONG" in run(
        shell(runbook_targets, only(manuals(redis.check_reachable, runbook_targets), "redis"))
    )
    memory = only(manuals(redis.check_memory, runbook_targets), "redis")
    assert "maxmemory_policy:" in run(shell(runbook_targets, memory))
    health = only(manuals(http.check_health, runbook_targets), "http")
    answer = run(shell(runbook_targets, health))
    assert answer.startswith("HTTP/1.1 200"), answer
    assert http.check_health(runbook_targets).evidence["http_status"] == 200
