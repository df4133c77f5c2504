"""The native sandbox, for real: processes, ports, health, cache, metrics, outages, teardown.

The sandbox here runs in its own temporary DRILLBOOK_SANDBOX_DIR, so it never
touches a sandbox a developer has running in `.sandbox/`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox import SERVICES, Driver, SandboxError, get_driver, state_path, stopped

pytestmark = pytest.mark.sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 15.0


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="drillbook-sandbox-"))
    path.chmod(0o755)  # as root, PostgreSQL runs as the postgres OS user and must reach it
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DRILLBOOK_SANDBOX_DIR", str(path))
        env.delenv("DRILLBOOK_SANDBOX_STATE", raising=False)
        yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox(workdir: Path) -> Iterator[Driver]:
    driver = get_driver("native")
    driver.up(timeout_s=90)
    try:
        yield driver
    finally:
        driver.down()


@pytest.fixture(scope="module")
def api(sandbox: Driver) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.endpoints()["api"], timeout=5.0) as client:
        yield client


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


def supervisord_alive(pid: int) -> bool:
    """Whether `pid` runs and is not a zombie (PID 1 in a container may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_every_endpoint_is_on_loopback(sandbox: Driver) -> None:
    endpoints = sandbox.endpoints()
    assert sorted(endpoints) == sorted(SERVICES)
    assert {urlsplit(url).hostname for url in endpoints.values()} == {"127.0.0.1"}


def test_state_file_has_the_documented_shape(sandbox: Driver, workdir: Path) -> None:
    state = json.loads(state_path().read_text())
    assert state_path() == workdir / "state.json"
    assert state["driver"] == "native"
    assert state["services"] == list(SERVICES)
    assert state["prometheus_jobs"] == {"api": "api"}
    for verb in ("restart", "stop", "start"):
        assert state["platform"][verb][-2:] == [verb, "{service}"]
        assert Path(state["platform"][verb][0]).is_absolute()


def test_every_service_is_running(sandbox: Driver) -> None:
    assert sandbox.status() == dict.fromkeys(SERVICES, "running")


def test_health_reports_ok_with_each_dependency(api: httpx.Client) -> None:
    status, body = wait_for_health(api, "ok")
    assert status == 200
    assert body["version"] == "0.1.0"
    assert body["timestamp"].endswith("+00:00")
    for dependency in ("database", "redis"):
        assert body["dependencies"][dependency]["status"] == "ok"
        assert body["dependencies"][dependency]["error"] is None
        assert isinstance(body["dependencies"][dependency]["latency_ms"], float)


def test_skills_are_read_from_postgres_then_served_from_the_cache(sandbox: Driver, api: httpx.Client) -> None:
    first = api.get("/api/skills")
    second = api.get("/api/skills")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["cache"], second.json()["cache"]) == ("miss", "hit")
    assert first.json()["skills"] == second.json()["skills"]
    assert "contract-review" in {skill["name"] for skill in first.json()["skills"]}


def test_metrics_count_requests_by_route_template(api: httpx.Client) -> None:
    api.get("/api/skills")
    families = {f.name: f for f in text_string_to_metric_families(api.get("/metrics").text)}
    counted = {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in families["http_requests"].samples
        if s.name == "http_requests_total"
    }
    assert counted[("/api/skills", "GET", "200")] >= 1
    assert "http_request_duration_seconds" in families


def test_when_redis_is_stopped_then_health_is_degraded_until_it_starts(
    sandbox: Driver, api: httpx.Client
) -> None:
    with stopped(sandbox, "redis"):
        assert sandbox.status()["redis"] == "stopped"
        status, body = wait_for_health(api, "degraded")
        assert status == 503
        assert body["dependencies"]["redis"]["status"] == "down"
        assert body["dependencies"]["database"]["status"] == "ok"
        assert api.get("/api/skills").status_code == 200  # served from the database
    assert sandbox.status()["redis"] == "running"
    assert wait_for_health(api, "ok")[0] == 200


def sandbox_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m sandbox ARGS --driver native`, as a user would type it."""
    argv = [sys.executable, "-m", "sandbox", *args, "--driver", "native"]
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=30, check=False, cwd=REPO_ROOT, env=env
    )


def test_cli_status_lists_every_service_running(sandbox: Driver) -> None:
    done = sandbox_cli("status")
    assert done.returncode == 0, done.stderr
    assert {tuple(line.split()) for line in done.stdout.splitlines()} == {
        (service, "running") for service in SERVICES
    }


def test_down_stops_supervisord_and_removes_the_state_file(sandbox: Driver, workdir: Path) -> None:
    pid = int((workdir / "supervisord.pid").read_text())
    sandbox.down()
    assert not supervisord_alive(pid)
    assert not state_path().exists()
    assert sandbox.status() == dict.fromkeys(SERVICES, "stopped")
    sandbox.down()  # idempotent


def test_down_when_nothing_runs_exits_zero(tmp_path: Path) -> None:
    done = sandbox_cli("down", env={**os.environ, "DRILLBOOK_SANDBOX_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr


def test_up_refuses_to_wipe_a_directory_that_is_not_a_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("precious")
    monkeypatch.setenv("DRILLBOOK_SANDBOX_DIR", str(tmp_path))
    with pytest.raises(SandboxError, match="refusing to wipe"):
        get_driver("native").up(timeout_s=10)
    assert (tmp_path / "notes.txt").read_text() == "precious"
