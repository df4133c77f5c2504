"""The native sandbox, for real: processes, ports, the service's API, admin and chaos routes,
monitoring, outages, idempotent up, clean teardown, side-by-side sandboxes, failed starts.

The sandbox here runs in its own temporary DRILLBOOK_SANDBOX_DIR, so it never
touches a sandbox a developer has running in `.sandbox/`.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sandbox import SERVICES, Driver, SandboxError, StartupError, get_driver, read_state, state_path, stopped
from sandbox._driver import PROMETHEUS_JOBS, chaos_path
from sandbox.faults import Injector
from sandbox.service.corpus import SUPPORT_TOOL_USER_ID, api_key
from tests.integration.support import (
    SITE,
    descendants,
    is_loopback,
    listening_addresses,
    process_alive,
    runbook_of_alert,
    running_sandbox,
    sandbox_cli,
    sandbox_dir,
    until,
)

pytestmark = pytest.mark.sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 15.0
PUBLIC_ENDPOINTS = {
    "api",
    "upstream",
    "prometheus",
    "alertmanager",
    "receiver",
    "blackbox",
    "postgres",
    "redis",
}
REVOKED_USER = 40  # a seeded user whose key a test revokes (the traffic then gets 401s for it)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with sandbox_dir() as path:
        yield path


@pytest.fixture(scope="module")
def sandbox(workdir: Path) -> Iterator[Driver]:
    with running_sandbox() as driver:
        yield driver


@pytest.fixture(scope="module")
def state(sandbox: Driver) -> dict[str, Any]:
    return dict(read_state(state_path()))


@pytest.fixture(scope="module")
def api(sandbox: Driver) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.endpoints()["api"], timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def admin(state: dict[str, Any]) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {state['secrets']['admin_token']}"}
    with httpx.Client(base_url=state["endpoints"]["api"], timeout=30.0, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def db(state: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(state["endpoints"]["postgres"], autocommit=True) as conn:
        yield conn


def wait_for_health(api: httpx.Client, wanted: str) -> tuple[int, dict[str, Any]]:
    """Poll /health until its status is `wanted`; fail at the deadline with the last body."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        response = api.get("/health")
        body: dict[str, Any] = response.json()
        if body["status"] == wanted:
            return response.status_code, body
        if time.monotonic() > deadline:
            pytest.fail(f"/health not {wanted!r} after {DEADLINE_S}s; last answer: {body}")
        time.sleep(0.1)  # poll interval


def prometheus_query(state: dict[str, Any], query: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{state['endpoints']['prometheus']}/api/v1/query", params={"query": query}, timeout=5
    )
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def metric_samples(api: httpx.Client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = api.get("/metrics").text
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


# -- the layout: endpoints, state file, processes -------------------------------------------------


def test_every_endpoint_is_on_loopback(sandbox: Driver) -> None:
    endpoints = sandbox.endpoints()
    assert set(endpoints) == PUBLIC_ENDPOINTS
    assert {urlsplit(url).hostname for url in endpoints.values()} == {"127.0.0.1"}


def test_every_listening_socket_of_the_sandbox_is_on_loopback(sandbox: Driver, workdir: Path) -> None:
    pids = descendants({int((workdir / "supervisord.pid").read_text())})
    listening = listening_addresses(pids)
    ports = {port for _, _, port in listening}
    for url in sandbox.endpoints().values():
        assert urlsplit(url).port in ports
    assert [entry for entry in listening if not is_loopback(entry[1])] == []


def test_state_file_has_the_documented_shape_and_is_private(state: dict[str, Any], workdir: Path) -> None:
    assert state_path() == workdir / "state.json"
    assert stat.S_IMODE(state_path().stat().st_mode) == 0o600
    assert stat.S_IMODE(chaos_path().stat().st_mode) == 0o600
    assert state["driver"] == "native"
    assert state["services"] == list(SERVICES)
    assert state["prometheus_jobs"] == PROMETHEUS_JOBS
    assert len(state["secrets"]["admin_token"]) >= 32
    assert set(json.loads(chaos_path().read_text())) == {"token", "api", "upstream", "agent"}
    for verb in ("restart", "stop", "start"):
        assert state["platform"][verb][-2:] == [verb, "{service}"]
        assert Path(state["platform"][verb][0]).is_absolute()


def test_every_service_is_running(sandbox: Driver) -> None:
    assert sandbox.status() == dict.fromkeys(SERVICES, "running")


def test_up_again_leaves_the_running_sandbox_as_it_is(
    sandbox: Driver, state: dict[str, Any], workdir: Path
) -> None:
    pids = descendants({int((workdir / "supervisord.pid").read_text())})
    sandbox.up(timeout_s=30)
    assert read_state(state_path()) == state
    assert pids <= descendants({int((workdir / "supervisord.pid").read_text())})


# -- the reference service ------------------------------------------------------------------------


def test_health_reports_ok_with_each_dependency_and_the_circuit(api: httpx.Client) -> None:
    status, body = wait_for_health(api, "ok")
    assert status == 200
    assert body["version"] == "0.2.0"
    assert body["timestamp"].endswith("+00:00")
    assert body["circuit"] == {"state": "closed", "forced": False}
    for dependency in ("database", "redis", "upstream"):
        assert body["dependencies"][dependency]["status"] == "ok"
        assert body["dependencies"][dependency]["error"] is None
        assert isinstance(body["dependencies"][dependency]["latency_ms"], float)


def test_skills_are_read_from_postgres_then_served_from_the_cache(
    state: dict[str, Any], api: httpx.Client
) -> None:
    redis.Redis.from_url(state["endpoints"]["redis"]).delete("cache:skills")
    first = api.get("/api/skills")
    second = api.get("/api/skills")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["cache"] == "hit"
    assert first.json()["skills"] == second.json()["skills"]
    assert "contract-review" in {skill["name"] for skill in first.json()["skills"]}


def test_analyze_records_usage_and_an_audit_row_with_the_forwarded_address(
    api: httpx.Client, db: psycopg.Connection[Any]
) -> None:
    text = f"integration test {time.time_ns()}"  # a one-off document: a cache miss
    response = api.post(
        "/api/analyze",
        json={"skill": "classify-ticket", "input": text},
        headers={"X-API-Key": api_key(7), "X-Forwarded-For": "198.51.100.23"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["degraded"] is False
    usage = db.execute(
        "SELECT skill, tokens_input, tokens_output, cost_usd, success, error_type, cached FROM usage_logs"
        " WHERE user_id = 7 ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert usage is not None
    skill, tokens_in, tokens_out, cost, success, error_type, cached = usage
    assert (skill, success, error_type, cached) == ("classify-ticket", True, None, False)
    assert 600 <= tokens_in <= 1000
    assert 200 <= tokens_out <= 350
    assert float(cost) == pytest.approx((tokens_in + tokens_out) / 1000 * 0.0008, abs=1e-6)
    audit = db.execute(
        "SELECT path, status, host(address) FROM audit_logs WHERE user_id = 7 ORDER BY id DESC LIMIT 1"
    ).fetchone()
    assert audit == ("/api/analyze", 200, "198.51.100.23")


def test_analyze_without_a_key_or_with_a_wrong_one_is_refused(api: httpx.Client) -> None:
    body = {"skill": "summarise", "input": "hello"}
    assert api.post("/api/analyze", json=body).status_code == 401
    assert api.post("/api/analyze", json=body, headers={"X-API-Key": "dbk_not_a_key"}).status_code == 401


def test_usage_reads_own_data_and_only_an_integration_key_reads_others(api: httpx.Client) -> None:
    own = api.get("/api/usage", params={"hours": 96}, headers={"X-API-Key": api_key(5)})
    assert own.status_code == 200
    assert own.json()["user_id"] == 5
    assert sum(row["requests"] for row in own.json()["skills"]) > 0  # the seeded history
    other = api.get("/api/usage", params={"user_id": 6}, headers={"X-API-Key": api_key(5)})
    assert other.status_code == 403
    before = sum(metric_samples(api, "cross_user_reads_total").values())
    support = api.get(
        "/api/usage", params={"user_id": 6}, headers={"X-API-Key": api_key(SUPPORT_TOOL_USER_ID)}
    )
    assert support.status_code == 200
    assert sum(metric_samples(api, "cross_user_reads_total").values()) == before + 1


def test_metrics_cover_requests_pool_cache_circuit_upstream_tokens_and_cost(api: httpx.Client) -> None:
    until(lambda: metric_samples(api, "llm_cost_usd_total"), timeout_s=DEADLINE_S, what="a priced call")
    families = {f.name for f in text_string_to_metric_families(api.get("/metrics").text)}
    assert {
        "http_requests",
        "http_request_duration_seconds",
        "db_pool_connections",
        "db_pool_max_connections",
        "db_pool_waiting",
        "cache_requests",
        "circuit_breaker_state",
        "fallback_responses",
        "upstream_requests",
        "upstream_request_duration_seconds",
        "llm_tokens",
        "llm_cost_usd",
        "skill_rollout_percentage",
    } <= families
    counted = metric_samples(api, "http_requests_total")
    assert counted[(("method", "POST"), ("route", "/api/analyze"), ("status", "200"))] >= 1
    assert metric_samples(api, "db_pool_max_connections") == {(): 5.0}


def test_upstream_status_page_uses_the_common_format(state: dict[str, Any]) -> None:
    body = httpx.get(f"{state['endpoints']['upstream']}/api/v2/status.json", timeout=5).json()
    assert body["status"] == {"indicator": "none", "description": "All Systems Operational"}
    assert {"id", "name", "url", "updated_at"} <= set(body["page"])


# -- admin and chaos routes -----------------------------------------------------------------------


def test_admin_routes_refuse_a_missing_or_wrong_token(api: httpx.Client) -> None:
    assert api.get("/admin/state").status_code == 401
    assert api.get("/admin/state", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert api.put("/admin/rollout", json={"percentage": 0}).status_code == 401


def test_admin_state_has_the_contract_shape(admin: httpx.Client) -> None:
    body = admin.get("/admin/state").json()
    assert body["rollout_percentage"] == 10
    assert body["circuit"] == {"state": "closed", "forced": False}
    assert body["cache_ttl_seconds"] == 300
    assert body["upstream_timeout_seconds"] == 5.0
    assert body["skills"]["summarise-v2"] == {"enabled": True, "max_tokens": 2000}


@pytest.mark.parametrize(
    ("method", "path", "change", "restore"),
    [
        ("PUT", "/admin/rollout", {"percentage": 25}, {"percentage": 10}),
        (
            "PUT",
            "/admin/skills/draft-reply",
            {"enabled": True, "max_tokens": 900},
            {"enabled": False, "max_tokens": 1500},
        ),
        ("PUT", "/admin/circuit", {"state": "closed"}, {"state": "auto"}),
        ("PUT", "/admin/cache", {"ttl_seconds": 600}, {"ttl_seconds": 300}),
        ("PUT", "/admin/upstream", {"timeout_seconds": 2.5}, {"timeout_seconds": 5.0}),
    ],
)
def test_admin_changes_are_idempotent_and_report_before_and_after(
    admin: httpx.Client, method: str, path: str, change: dict[str, Any], restore: dict[str, Any]
) -> None:
    first = admin.request(method, path, json=change)
    second = admin.request(method, path, json=change)
    back = admin.request(method, path, json=restore)
    assert (first.status_code, second.status_code, back.status_code) == (200, 200, 200), first.text
    assert first.json()["before"] != first.json()["after"]
    assert second.json()["before"] == second.json()["after"] == first.json()["after"]
    assert back.json()["after"] == first.json()["before"]


def test_admin_rejects_invalid_values(admin: httpx.Client) -> None:
    assert admin.put("/admin/rollout", json={"percentage": 101}).status_code == 422
    assert admin.put("/admin/skills/summarise", json={"max_tokens": 0}).status_code == 422
    assert admin.put("/admin/skills/no-such-skill", json={"enabled": False}).status_code == 404
    assert admin.put("/admin/circuit", json={"state": "sideways"}).status_code == 422


def test_forcing_the_circuit_open_serves_the_fallback(api: httpx.Client, admin: httpx.Client) -> None:
    admin.put("/admin/circuit", json={"state": "open"})
    try:
        response = api.post(
            "/api/analyze",
            json={"skill": "summarise", "input": f"one-off {time.time_ns()}. Second sentence."},
            headers={"X-API-Key": api_key(8)},
        )
        assert response.status_code == 200
        assert response.json()["degraded"] is True
        assert api.get("/health").json()["circuit"] == {"state": "open", "forced": True}
    finally:
        admin.put("/admin/circuit", json={"state": "auto"})


def test_cache_warm_fills_the_cache_for_the_named_skills(state: dict[str, Any], admin: httpx.Client) -> None:
    body = admin.post("/admin/cache/warm", json={"skills": ["extract-entities"]}).json()
    assert body == {"warmed": ["extract-entities"]}
    cache = redis.Redis.from_url(state["endpoints"]["redis"])
    assert len(list(cache.scan_iter(match="cache:analyze:extract-entities:*", count=500))) >= 20


def test_revoking_a_key_revokes_its_user_refresh_tokens_and_locks_it_out(
    api: httpx.Client, admin: httpx.Client, db: psycopg.Connection[Any]
) -> None:
    row = db.execute("SELECT id FROM api_keys WHERE user_id = %s", (REVOKED_USER,)).fetchone()
    assert row is not None
    first = admin.post(f"/admin/api-keys/{row[0]}/revoke").json()
    again = admin.post(f"/admin/api-keys/{row[0]}/revoke").json()
    assert first["before"]["revoked"] is False
    assert first["after"]["refresh_tokens_revoked"] == 2
    assert again["before"]["revoked"] is True
    live = db.execute(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = %s AND revoked_at IS NULL", (REVOKED_USER,)
    ).fetchone()
    assert live == (0,)
    refused = api.get("/api/usage", headers={"X-API-Key": api_key(REVOKED_USER)})
    assert refused.status_code == 401


def test_disabling_a_user_locks_out_every_key_of_theirs(
    api: httpx.Client, admin: httpx.Client, db: psycopg.Connection[Any]
) -> None:
    body = admin.post(f"/admin/users/{REVOKED_USER - 1}/disable").json()
    assert body["after"]["disabled"] is True
    assert api.get("/api/usage", headers={"X-API-Key": api_key(REVOKED_USER - 1)}).status_code == 401


def test_chaos_routes_refuse_requests_without_their_token(sandbox: Driver, state: dict[str, Any]) -> None:
    access = json.loads(chaos_path().read_text())
    for url in (f"{access['api']}/chaos", f"{access['upstream']}/chaos", f"{access['agent']}/faults"):
        assert httpx.get(url, timeout=5).status_code == 401, url
        assert httpx.get(url, headers={"X-Chaos-Token": "wrong"}, timeout=5).status_code == 403, url
        assert httpx.get(url, headers={"X-Chaos-Token": access["token"]}, timeout=5).status_code == 200, url
    admin_token = state["secrets"]["admin_token"]  # the admin token is not the chaos token
    assert httpx.get(f"{access['api']}/chaos", headers={"X-Chaos-Token": admin_token}).status_code == 403


# -- monitoring -----------------------------------------------------------------------------------


def test_prometheus_scrapes_every_job_and_the_blackbox_probe_succeeds(state: dict[str, Any]) -> None:
    def all_up() -> set[str]:
        jobs = {r["metric"]["job"] for r in prometheus_query(state, "up == 1")}
        return jobs if jobs >= set(PROMETHEUS_JOBS.values()) else set()

    until(all_up, timeout_s=DEADLINE_S, what="every scrape job up")
    until(
        lambda: prometheus_query(state, 'probe_success{job="blackbox"} == 1'),
        timeout_s=DEADLINE_S,
        what="the blackbox probe of /health",
    )
    for rule in ("api:http_request_errors:ratio_rate15s", "api:http_request_duration_seconds:p95_rate15s"):
        until(lambda rule=rule: prometheus_query(state, rule), timeout_s=DEADLINE_S, what=rule)


def test_every_contract_alert_is_loaded_with_severity_and_runbook_url(state: dict[str, Any]) -> None:
    groups = httpx.get(f"{state['endpoints']['prometheus']}/api/v1/rules", timeout=5).json()["data"]["groups"]
    alerts = {rule["name"]: rule for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
    runbooks = runbook_of_alert()
    assert set(alerts) == set(runbooks)
    for name, slug in runbooks.items():
        assert alerts[name]["labels"]["severity"] in {"SEV1", "SEV2", "SEV3", "SEV4"}
        assert alerts[name]["annotations"]["runbook_url"] == f"{SITE}runbooks/{slug}/"
        assert alerts[name]["annotations"]["summary"]
        assert alerts[name]["annotations"]["description"]


def test_nothing_fires_in_a_healthy_sandbox(state: dict[str, Any]) -> None:
    firing = httpx.get(f"{state['endpoints']['prometheus']}/api/v1/alerts", timeout=5).json()["data"][
        "alerts"
    ]
    assert [a["labels"]["alertname"] for a in firing if a["state"] == "firing"] == []


def test_alertmanager_is_ready_and_routes_to_the_receiver(state: dict[str, Any]) -> None:
    status = httpx.get(f"{state['endpoints']['alertmanager']}/api/v2/status", timeout=5).json()
    assert f"{state['endpoints']['receiver']}/webhook" in status["config"]["original"]
    assert httpx.get(f"{state['endpoints']['receiver']}/health", timeout=5).json()["status"] == "ok"


def test_sandbox_files_the_linter_reads_are_consistent() -> None:
    faults = yaml.safe_load((REPO_ROOT / "sandbox" / "faults.yml").read_text())
    alerts = {a for fault in faults for a in fault["alerts"]}
    assert alerts == set(runbook_of_alert())


# -- outages --------------------------------------------------------------------------------------


def test_when_redis_is_stopped_then_health_is_degraded_until_it_starts(
    sandbox: Driver, api: httpx.Client
) -> None:
    try:
        with stopped(sandbox, "redis"):
            assert sandbox.status()["redis"] == "stopped"
            status, body = wait_for_health(api, "degraded")
            assert status == 503
            assert body["dependencies"]["redis"]["status"] == "down"
            assert body["dependencies"]["database"]["status"] == "ok"
            assert api.get("/api/skills").status_code == 200  # served from the database
    finally:
        Injector.attach(sandbox).clear("cache-down")  # a restarted Redis is empty: warm it for the next test
    assert sandbox.status()["redis"] == "running"
    assert wait_for_health(api, "ok")[0] == 200


def test_cli_status_lists_every_service_running(sandbox: Driver) -> None:
    done = sandbox_cli("status")
    assert done.returncode == 0, done.stderr
    assert {tuple(line.split()) for line in done.stdout.splitlines()} == {
        (service, "running") for service in SERVICES
    }


def test_cli_lists_the_fault_catalogue() -> None:
    done = sandbox_cli("faults")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    listed = [fault["name"] for fault in yaml.safe_load((REPO_ROOT / "sandbox" / "faults.yml").read_text())]
    assert names == listed  # every fault of the catalogue's file, in its order
    assert "db-lock-contention" in names


# -- side by side, teardown, failed starts ---------------------------------------------------------


def test_a_second_sandbox_runs_side_by_side_on_other_ports(sandbox: Driver, api: httpx.Client) -> None:
    first = {urlsplit(url).port for url in sandbox.endpoints().values()}
    with sandbox_dir(), running_sandbox() as second:
        other = second.endpoints()
        assert first.isdisjoint({urlsplit(url).port for url in other.values()})
        theirs = httpx.get(f"{other['api']}/health", timeout=5)
        assert theirs.status_code == 200, theirs.text
        ours = api.get("/health")
        assert ours.status_code == 200, ours.text
        assert second.state_file != sandbox.state_file


def test_down_stops_every_process_frees_every_port_and_removes_the_state(
    sandbox: Driver, workdir: Path
) -> None:
    supervisor = int((workdir / "supervisord.pid").read_text())
    pids = descendants({supervisor})
    ports = [urlsplit(url).port for url in sandbox.endpoints().values()]
    assert len(pids) > len(SERVICES)
    sandbox.down()
    assert [pid for pid in pids if process_alive(pid)] == []
    for port in ports:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    assert not state_path().exists()
    assert not chaos_path().exists()
    assert sandbox.status() == dict.fromkeys(SERVICES, "stopped")
    sandbox.down()  # idempotent


def test_down_when_nothing_runs_exits_zero(tmp_path: Path) -> None:
    done = sandbox_cli("down", env={**os.environ, "DRILLBOOK_SANDBOX_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr


def test_a_failed_start_names_the_service_and_shows_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "bin" / "redis-server"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'FATAL: cannot allocate the dataset (drill)' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    with sandbox_dir() as workdir:
        driver = get_driver("native")
        with pytest.raises(StartupError) as failure:
            driver.up(timeout_s=60)
        assert failure.value.service == "redis"
        assert "cannot allocate the dataset" in failure.value.log_tail
        assert "redis" in str(failure.value)
        assert "cannot allocate the dataset" in str(failure.value)
        assert not (workdir / "state.json").exists()
        assert driver.status() == dict.fromkeys(SERVICES, "stopped")


def test_up_refuses_to_wipe_a_directory_that_is_not_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    monkeypatch.setenv("DRILLBOOK_SANDBOX_DIR", str(tmp_path))
    with pytest.raises(SandboxError, match="refusing to wipe"):
        get_driver("native").up(timeout_s=10)
    assert (tmp_path / "notes.txt").read_text() == "precious"
