"""compose.yaml describes the same sandbox as the native driver, Compose accepts it, and the
compose driver runs the commands it should (checked at the argv level, no Docker needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import SERVICES, StartupError
from sandbox._compose import COMPOSE_FILE, CONTAINER_PORTS, ComposeDriver, parse_ps, project_name
from sandbox._driver import ENDPOINT_FORMS, read_chaos_access, read_state
from sandbox._errors import CommandError

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_SERVICES = ("upstream", "api", "traffic", "chaos", "receiver")
IMAGE_VARIABLE = re.compile(r"^\$\{DRILLBOOK_[A-Z_]+_IMAGE:-[^}]+\}$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = document["services"]
    return found


def _host_ip(port: str | dict[str, Any]) -> str | None:
    """The host address of a short ("127.0.0.1::8000") or long port entry."""
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else None


# -- the file -------------------------------------------------------------------------------------


def test_compose_services_are_the_native_drivers_services(services: dict[str, dict[str, Any]]) -> None:
    assert sorted(services) == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck", {})
    assert healthcheck.get("test"), f"{name} has no healthcheck test"
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("name", SERVICES)
def test_every_published_port_is_on_loopback_only(services: dict[str, dict[str, Any]], name: str) -> None:
    ports = services[name].get("ports", [])
    assert [_host_ip(port) for port in ports] == ["127.0.0.1"] * len(ports)


def test_every_endpoint_the_driver_reads_is_published(services: dict[str, dict[str, Any]]) -> None:
    assert set(ENDPOINT_FORMS) <= set(CONTAINER_PORTS)
    for service, container_port in CONTAINER_PORTS.items():
        assert f"127.0.0.1::{container_port}" in services[service]["ports"], service


@pytest.mark.parametrize("name", SERVICES)
def test_every_image_is_overridable_through_the_environment(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert IMAGE_VARIABLE.match(services[name]["image"]), services[name]["image"]


def test_the_python_base_image_is_overridable(services: dict[str, dict[str, Any]]) -> None:
    for name in PYTHON_SERVICES:
        build = services[name]["build"]
        assert build["dockerfile"] == "sandbox/Dockerfile"
        assert IMAGE_VARIABLE.match(build["args"]["PYTHON_IMAGE"])
    dockerfile = (REPO_ROOT / "sandbox" / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=" in dockerfile
    assert "FROM ${PYTHON_IMAGE}" in dockerfile


def test_tokens_come_from_the_driver_not_the_file(services: dict[str, dict[str, Any]]) -> None:
    assert services["api"]["environment"]["ADMIN_TOKEN"] == "${DRILLBOOK_ADMIN_TOKEN:-}"
    for name in ("api", "upstream", "chaos"):
        assert services[name]["environment"]["CHAOS_TOKEN"] == "${DRILLBOOK_CHAOS_TOKEN:-}"


def test_every_mounted_file_exists(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"


def _compose_binary() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("docker-compose is not installed (apt install docker-compose); CI installs it")


def test_compose_validates_the_file() -> None:
    done = subprocess.run(
        [*_compose_binary(), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr


def test_an_overridden_image_reaches_the_resolved_file() -> None:
    env = {**os.environ, "DRILLBOOK_POSTGRES_IMAGE": "mirror.example.internal/library/postgres:15.10"}
    done = subprocess.run(
        [*_compose_binary(), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["postgres"]["image"] == "mirror.example.internal/library/postgres:15.10"


# -- the driver, at the argv level ----------------------------------------------------------------


class Recorder:
    """Stands in for `run_command`: records each argv and answers from a script."""

    def __init__(self, answers: Mapping[str, str] | None = None, failing: str | None = None) -> None:
        self.calls: list[tuple[list[str], dict[str, str] | None]] = []
        self.answers = dict(answers or {})
        self.failing = failing

    def __call__(
        self, argv: Sequence[str], *, timeout_s: float, hint: str, env: Mapping[str, str] | None = None
    ) -> str:
        self.calls.append((list(argv), None if env is None else dict(env)))
        verb = " ".join(argv[6:])
        if self.failing is not None and verb.startswith(self.failing):
            raise CommandError(argv, 1, "dependency failed to start: container is unhealthy", hint=hint)
        for prefix, answer in self.answers.items():
            if verb.startswith(prefix):
                return answer
        if verb.startswith("port "):
            service = argv[7]
            return f"127.0.0.1:{40000 + sorted(CONTAINER_PORTS).index(service)}\n"
        return ""

    def verbs(self) -> list[str]:
        return [" ".join(argv[6:]) for argv, _ in self.calls]


class OfflineComposeDriver(ComposeDriver):
    """The compose driver without the HTTP steps after `up` (no containers run here)."""

    def after_up(
        self, endpoints: Mapping[str, str], *, admin_token: str, deadline: float, rates: bool = True
    ) -> None:
        self.seen_endpoints = dict(endpoints)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRILLBOOK_SANDBOX_DIR", str(tmp_path))
    monkeypatch.delenv("DRILLBOOK_SANDBOX_STATE", raising=False)
    return tmp_path


def _ps(states: Mapping[str, tuple[str, str]]) -> str:
    return "\n".join(
        json.dumps({"Service": name, "State": state, "Health": health})
        for name, (state, health) in states.items()
    )


def test_every_command_starts_with_the_file_and_a_project(workdir: Path) -> None:
    recorder = Recorder()
    driver = OfflineComposeDriver(runner=recorder)
    driver.up(timeout_s=120)
    for argv, _ in recorder.calls:
        assert argv[:6] == ["docker", "compose", "-f", str(COMPOSE_FILE), "-p", driver.project]


def test_up_builds_and_waits_then_discovers_every_endpoint(workdir: Path) -> None:
    recorder = Recorder()
    driver = OfflineComposeDriver(runner=recorder)
    driver.up(timeout_s=120)
    verbs = recorder.verbs()
    assert verbs[0] == "up --build --wait --wait-timeout 120 -d"
    assert sorted(verbs[1:]) == sorted(f"port {s} {p}" for s, p in CONTAINER_PORTS.items())
    env = recorder.calls[0][1]
    assert env is not None
    assert len(env["DRILLBOOK_ADMIN_TOKEN"]) >= 32
    assert env["DRILLBOOK_CHAOS_TOKEN"] != env["DRILLBOOK_ADMIN_TOKEN"]
    state = read_state(workdir / "state.json")
    assert state["driver"] == "compose"
    assert state["secrets"]["admin_token"] == env["DRILLBOOK_ADMIN_TOKEN"]
    assert state["endpoints"] == driver.seen_endpoints
    assert state["endpoints"]["postgres"].startswith("postgresql://drillbook@127.0.0.1:")
    assert state["platform"]["restart"] == [*driver.base, "restart", "{service}"]
    assert (workdir / "state.json").stat().st_mode & 0o777 == 0o600
    assert read_chaos_access(workdir / "chaos.json")["token"] == env["DRILLBOOK_CHAOS_TOKEN"]


def test_up_when_everything_runs_changes_nothing(workdir: Path) -> None:
    OfflineComposeDriver(runner=Recorder()).up(timeout_s=60)
    running = _ps(dict.fromkeys(SERVICES, ("running", "healthy")))
    recorder = Recorder({"ps --all --format json": running})
    OfflineComposeDriver(runner=recorder).up(timeout_s=60)
    assert recorder.verbs() == ["ps --all --format json"]


def test_a_failed_up_names_the_unhealthy_service_shows_its_log_and_cleans_up(workdir: Path) -> None:
    states = dict.fromkeys(SERVICES, ("running", "healthy"))
    states["redis"] = ("running", "unhealthy")
    recorder = Recorder(
        {"ps --all --format json": _ps(states), "logs": "redis-1  | FATAL: out of memory\n"}, failing="up "
    )
    driver = OfflineComposeDriver(runner=recorder)
    with pytest.raises(StartupError) as failure:
        driver.up(timeout_s=60)
    assert failure.value.service == "redis"
    assert "FATAL: out of memory" in str(failure.value)
    assert recorder.verbs()[-2:] == ["logs --no-color --tail 30 redis", "down -v --remove-orphans"]
    assert not (workdir / "state.json").exists()


def test_down_removes_volumes_orphans_and_the_state(workdir: Path) -> None:
    OfflineComposeDriver(runner=Recorder()).up(timeout_s=60)
    recorder = Recorder()
    ComposeDriver(runner=recorder).down()
    assert recorder.verbs() == ["down -v --remove-orphans"]
    assert not (workdir / "state.json").exists()
    assert not (workdir / "chaos.json").exists()


def test_stop_start_and_logs_name_one_service(workdir: Path) -> None:
    recorder = Recorder()
    driver = ComposeDriver(runner=recorder)
    driver.stop("postgres")
    driver.start("postgres")
    driver.logs("api", lines=5)
    assert recorder.verbs() == ["stop postgres", "start postgres", "logs --no-color --tail 5 api"]
    with pytest.raises(ValueError, match="unknown service"):
        driver.stop("mysql")


def test_status_reads_both_json_formats_of_compose_ps(workdir: Path) -> None:
    rows = [{"Service": "api", "State": "running"}, {"Service": "redis", "State": "exited"}]
    for output in (json.dumps(rows), "\n".join(json.dumps(row) for row in rows)):
        status = ComposeDriver(runner=Recorder({"ps --all --format json": output})).status()
        assert status["api"] == "running"
        assert status["redis"] == "exited"
        assert status["prometheus"] == "absent"
    assert parse_ps("") == []


def test_two_sandbox_directories_get_two_projects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = set()
    for folder in ("one", "two"):
        monkeypatch.setenv("DRILLBOOK_SANDBOX_DIR", str(tmp_path / folder))
        names.add(project_name())
    monkeypatch.delenv("DRILLBOOK_SANDBOX_DIR")
    assert project_name() == "drillbook"
    assert len(names) == 2
    assert all(re.fullmatch(r"drillbook-[0-9a-f]{8}", name) for name in names)
