"""A database with every ordinary slot taken is full, not unreachable; checks get in through the
environment's reserved connection (`postgres_reserved` in environments.yml) when it declares one."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from checks import Status, Targets, postgres
from checks._errors import ConfigError
from checks._policy import load_environments, policy_dir
from checks.redact import Redactor
from sandbox import Driver
from sandbox.faults import Injector


@pytest.fixture
def every_slot_taken(sandbox: Driver) -> Iterator[Injector]:
    injector = Injector.attach(sandbox)
    injector.inject("db-slots-full")
    try:
        yield injector
    finally:
        injector.clear("db-slots-full")


@pytest.fixture
def policy_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of policy/ that this test may change, made the policy of the process."""
    folder = tmp_path / "policy"
    shutil.copytree(policy_dir(), folder)
    monkeypatch.setenv("DRILLBOOK_POLICY_DIR", str(folder))
    return folder / "environments.yml"


def _declare_reserved(environments: Path, env: str, dsn: str) -> None:
    document = yaml.safe_load(environments.read_text(encoding="utf-8"))
    document["environments"][env]["postgres_reserved"] = dsn
    environments.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")


# --------------------------------------------------------------------------- policy, no database


def test_reserved_dsn_takes_what_it_leaves_out_from_the_ordinary_endpoint_but_not_its_password() -> None:
    targets = Targets(
        environment="staging",
        gate="apply",
        postgres="postgresql://runbook:ordinary-pw@db.staging.example.internal:5432/app?sslmode=require",
    )
    dsn = postgres.reserved_dsn(targets)
    assert dsn is not None
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    assert info["user"] == "runbook_reserved"
    assert (info["host"], info["dbname"], info["sslmode"]) == (
        "db.staging.example.internal",
        "app",
        "require",
    )
    assert "password" not in info
    assert "ordinary-pw" not in dsn


def test_an_environment_without_a_reserved_connection_has_none() -> None:
    targets = Targets(environment="nowhere", gate="apply", postgres="postgresql://x@127.0.0.1:1/x")
    assert postgres.reserved_dsn(targets) is None


def test_a_password_written_into_postgres_reserved_is_refused_by_the_schema(policy_copy: Path) -> None:
    _declare_reserved(
        policy_copy, "staging", "postgresql://runbook_reserved:hunter22@db.example.internal/app"
    )
    with pytest.raises(ConfigError, match="postgres_reserved"):
        load_environments()
    _declare_reserved(policy_copy, "staging", "host=db.example.internal user=r password=hunter22")
    with pytest.raises(ConfigError, match="postgres_reserved"):
        load_environments()


def test_the_reserved_password_is_a_declared_secret_and_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for env in ("staging", "production"):
        variable = load_environments()[env]["secrets"]["postgres_reserved_password"]
        monkeypatch.setenv(variable, "Reserved-Pw-8c1f")
        assert Redactor().text("as Reserved-Pw-8c1f") == "as Reserved-Pw-8c1f"  # no shape: the value
        assert Redactor.from_policy().text("as Reserved-Pw-8c1f") == "as ***"


# --------------------------------------------------------------------------- against the sandbox


@pytest.mark.sandbox
def test_when_every_slot_is_taken_and_no_reserved_way_in_then_full_is_crit_and_the_rest_unknown(
    runbook_targets: Targets, every_slot_taken: Injector
) -> None:
    ordinary = runbook_targets.endpoint("postgres")  # a bare DSN: no reserved connection
    connections = postgres.check_connections(ordinary)
    assert connections.status is Status.CRIT
    assert connections.summary.startswith("full: ")
    assert "unreachable" not in connections.summary
    assert "no reserved connection is declared" in connections.summary
    reachable = postgres.check_reachable(ordinary)
    assert reachable.status is Status.CRIT
    assert reachable.summary.startswith("full: ")
    # a check that could not look has observed nothing: UNKNOWN, so no mitigation acts on it
    for check in (postgres.check_idle_in_transaction, postgres.check_blocked_queries):
        result = check(ordinary)
        assert result.status is Status.UNKNOWN, result
        assert "PostgreSQL is full" in result.summary


@pytest.mark.sandbox
def test_when_every_slot_is_taken_then_checks_read_through_the_reserved_connection(
    runbook_targets: Targets, every_slot_taken: Injector
) -> None:
    held = {conn.info.backend_pid for conn in every_slot_taken.held}
    stats = postgres.connections(runbook_targets)
    assert stats.through_reserved
    assert stats.full
    assert stats.total == stats.available
    assert stats.holders[0].application == "drillbook-report-job"
    assert stats.holders[0].count == len(held)
    assert held <= {b.pid for b in postgres.sessions(runbook_targets)}  # own session never listed

    connections = postgres.check_connections(runbook_targets)
    assert connections.status is Status.CRIT
    assert connections.summary.startswith(f"full: {stats.available} of {stats.available} connection slots")
    assert "drillbook-report-job" in connections.summary
    assert connections.evidence["through_reserved"] is True
    reachable = postgres.check_reachable(runbook_targets)
    assert reachable.status is Status.CRIT
    assert "the reserved connection answers" in reachable.summary
    assert postgres.check_idle_in_transaction(runbook_targets, older_than_s=0).status is Status.CRIT


@pytest.mark.sandbox
def test_when_the_reserved_connection_is_refused_too_then_full_says_why(
    runbook_targets: Targets, policy_copy: Path, every_slot_taken: Injector
) -> None:
    _declare_reserved(policy_copy, "sandbox", "postgresql://no_such_reserved_role@")
    targets = Targets.from_env("sandbox")
    connections = postgres.check_connections(targets)
    assert connections.status is Status.CRIT
    assert connections.summary.startswith("full: ")
    assert "the reserved connection was refused too" in connections.summary
    assert "no_such_reserved_role" in connections.summary


@pytest.mark.sandbox
def test_a_full_database_is_up_so_a_restart_has_no_problem_to_act_on(
    runbook_targets: Targets, every_slot_taken: Injector
) -> None:
    for target in (runbook_targets.endpoint("postgres"), runbook_targets):  # without and with a way in
        server = postgres.check_server(target)
        assert server.status is Status.OK, server
        assert server.evidence["full"] is True
        assert "full, not down" in server.summary
