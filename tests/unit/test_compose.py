"""compose.yaml describes the same sandbox as the native driver, built from one Debian base
image with the native driver's Debian packages; Compose accepts it; and the compose driver
runs the commands it should (checked at the argv level, no Docker needed)."""

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
from sandbox._compose import (
    COMPOSE_FILE,
    CONTAINER_PORTS,
    ComposeDriver,
    parse_ps,
    port_variable,
    project_name,
)
from sandbox._driver import ENDPOINT_FORMS, read_chaos_access, read_state
from sandbox._errors import CommandError
from sandbox.stock._native import COMPOSE_SERVICES, MODULES, STOCK_JOBS, STOCK_SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "sandbox" / "Dockerfile"
PYTHON_SERVICES = ("upstream", "api", "traffic", "chaos", "receiver")
IMAGE_VARIABLE = re.compile(r"^\$\{DRILLBOOK_[A-Z_]+_IMAGE:-[^}]+\}$")
BASE_IMAGE = "${DRILLBOOK_BASE_IMAGE:-debian:bookworm-slim}"
# A healthcheck's program -> the Debian package that puts it in an image (python: the venv).
HEALTHCHECK_TOOLS = {
    "curl": "curl",
    "pg_isready": "postgresql",
    "redis-cli": "redis-server",
    "python": "python3-venv",
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return loaded


@pytest.fixture(scope="module")
def services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = document["services"]
    return found


@pytest.fixture(scope="module")
def stages() -> dict[str, list[str]]:
    """The Dockerfile's stages: name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found: dict[str, list[str]] = {}
    current: list[str] = found.setdefault("", [])  # before the first FROM: global ARGs
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.fullmatch(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, flags=re.IGNORECASE):
            current = found.setdefault(match[2], [f"FROM {match[1]}"])
        else:
            current.append(line)
    return found


def _builder(services: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """The `build` of the service that builds `name`'s image: its own, or the one service
    with a `build` that tags the same image."""
    if "build" in services[name]:
        build: dict[str, Any] = services[name]["build"]
        return build
    image = services[name]["image"]
    builders = [s["build"] for s in services.values() if s["image"] == image and "build" in s]
    assert len(builders) == 1, f"{name}: {len(builders)} services build {image}"
    return builders[0]


def _installed(stages: dict[str, list[str]], stage: str) -> set[str]:
    """The Debian packages `apt-get install` puts in `stage` and the stages it is built on."""
    packages: set[str] = set()
    while stage in stages:
        for line in stages[stage]:
            for command in re.findall(r"apt-get install ([^&]+)", line):
                packages.update(word for word in command.split() if not word.startswith("-"))
        stage = stages[stage][0].split()[1]  # FROM <parent>
    return packages


def _host_ip(port: str | dict[str, Any]) -> str | None:
    """The host address of a long or short port entry ("127.0.0.1::8000", with a host port
    or a variable for one in the middle: "127.0.0.1:${DRILLBOOK_API_PORT:-}:8000")."""
    if isinstance(port, dict):
        return port.get("host_ip")
    match = re.fullmatch(r"([^:]+):(\$\{[A-Z_]+:-\}|\d*):\d+", str(port))
    return match[1] if match else None


# -- the file -------------------------------------------------------------------------------------


def _unprofiled(services: Mapping[str, dict[str, Any]]) -> list[str]:
    """The services `docker compose up` starts without a --profile: the reference sandbox."""
    return sorted(name for name, service in services.items() if not service.get("profiles"))


def test_compose_services_are_the_native_drivers_services(services: dict[str, dict[str, Any]]) -> None:
    assert _unprofiled(services) == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck", {})
    assert healthcheck.get("test"), f"{name} has no healthcheck test"
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("name", SERVICES)
def test_every_healthcheck_runs_a_program_its_image_installs(
    services: dict[str, dict[str, Any]], stages: dict[str, list[str]], name: str
) -> None:
    kind, program, *_ = services[name]["healthcheck"]["test"]
    assert kind == "CMD", "an argv, no shell: the images need not have one that the check relies on"
    assert program in HEALTHCHECK_TOOLS, f"{name}: which package provides {program!r}?"
    target = _builder(services, name)["target"]
    assert HEALTHCHECK_TOOLS[program] in _installed(stages, target), f"{name}: {program} is not in {target}"


@pytest.mark.parametrize("name", SERVICES)
def test_every_published_port_is_on_loopback_only(services: dict[str, dict[str, Any]], name: str) -> None:
    ports = services[name].get("ports", [])
    assert [_host_ip(port) for port in ports] == ["127.0.0.1"] * len(ports)


def test_every_endpoint_the_driver_reads_is_published_on_the_port_it_picks(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(ENDPOINT_FORMS) <= set(CONTAINER_PORTS)
    for service, container_port in CONTAINER_PORTS.items():
        published = f"127.0.0.1:${{{port_variable(service)}:-}}:{container_port}"
        assert published in services[service]["ports"], service


@pytest.mark.parametrize("name", SERVICES)
def test_every_image_is_overridable_through_the_environment(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert IMAGE_VARIABLE.match(services[name]["image"]), services[name]["image"]


@pytest.mark.parametrize("name", SERVICES)
def test_every_image_is_built_from_the_base_image_variable(
    services: dict[str, dict[str, Any]], stages: dict[str, list[str]], name: str
) -> None:
    build = _builder(services, name)
    assert build["context"] == "."
    assert build["dockerfile"] == "sandbox/Dockerfile"
    assert build["args"] == {"BASE_IMAGE": BASE_IMAGE}
    assert build["target"] in stages


@pytest.mark.parametrize("name", SERVICES)
def test_no_service_image_is_pulled(services: dict[str, dict[str, Any]], name: str) -> None:
    """Built images are never pulled (there is nothing to pull them from); an image that
    several services share is built by one of them, which the others wait for."""
    expected = "build" if "build" in services[name] else "never"
    assert services[name].get("pull_policy") == expected


def test_the_python_services_share_one_image(services: dict[str, dict[str, Any]]) -> None:
    assert len({services[name]["image"] for name in PYTHON_SERVICES}) == 1
    assert _builder(services, "api")["target"] == "service"


def test_every_stage_starts_from_the_base_image_argument(stages: dict[str, list[str]]) -> None:
    """Only the base image may come from outside; every other stage builds on a local one."""
    assert "ARG BASE_IMAGE=debian:bookworm-slim" in stages[""]
    parents = {name: lines[0].split()[1] for name, lines in stages.items() if name}
    assert [name for name, parent in parents.items() if parent == "${BASE_IMAGE}"] == ["debian"]
    for name, parent in parents.items():
        assert parent == "${BASE_IMAGE}" or parent in stages, f"stage {name} starts from {parent}"


def test_every_stage_that_installs_packages_does_it_without_questions(stages: dict[str, list[str]]) -> None:
    """An ARG holds in its own stage only, so each stage that runs apt-get declares it."""
    for name, lines in stages.items():
        if any("apt-get install" in line for line in lines):
            assert "ARG DEBIAN_FRONTEND=noninteractive" in lines, name


def test_the_images_install_the_native_drivers_servers(stages: dict[str, list[str]]) -> None:
    """The Debian packages scripts/install-os-packages installs for the native sandbox."""
    script = (REPO_ROOT / "scripts" / "install-os-packages").read_text()
    servers = {
        package
        for package in re.findall(r"\[[\w-]+\]=([\w.+-]+)", script)
        if package.startswith(("postgresql", "redis", "prometheus"))
    }
    assert len(servers) == 7, servers
    installed = set().union(*(_installed(stages, name) for name in stages))
    assert servers <= installed


def test_every_file_the_dockerfile_copies_is_in_the_build_context(stages: dict[str, list[str]]) -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (REPO_ROOT / "sandbox" / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    copies = [line.split()[1:-1] for lines in stages.values() for line in lines if line.startswith("COPY ")]
    sources = [word for words in copies for word in words if not word.startswith("--")]
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), source
        assert any(source == a or source.startswith(f"{a}/") for a in allowed), f"{source} is ignored"


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
    """Compose v2 (what the driver runs) when installed, else v1, which validates as well."""
    if shutil.which("docker"):
        done = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if done.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("docker-compose is not installed (apt install docker-compose); CI installs it")


def _resolved(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [*_compose_binary(), "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_compose_validates_the_file() -> None:
    assert _unprofiled(_resolved()["services"]) == sorted(SERVICES)


def _resolved_profile(profile: str) -> dict[str, Any]:
    done = subprocess.run(
        [*_compose_binary(), "-f", str(COMPOSE_FILE), "--profile", profile, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    resolved: dict[str, Any] = yaml.safe_load(done.stdout)
    return resolved


def test_compose_validates_the_stock_profile() -> None:
    assert set(COMPOSE_SERVICES.values()) <= set(_resolved_profile("stock")["services"])


# -- the stock stack (sandbox/stock), profile `stock` --------------------------------------------


def test_the_stock_profile_holds_the_native_stock_stack_and_nothing_of_the_reference(
    services: dict[str, dict[str, Any]],
) -> None:
    assert sorted(COMPOSE_SERVICES) == sorted(STOCK_SERVICES)
    stock = sorted(name for name, service in services.items() if service.get("profiles") == ["stock"])
    assert stock == sorted(COMPOSE_SERVICES.values())
    assert not set(COMPOSE_SERVICES.values()) & set(SERVICES)


@pytest.mark.parametrize("name", sorted(COMPOSE_SERVICES.values()))
def test_every_stock_service_has_a_healthcheck_its_image_can_run(
    services: dict[str, dict[str, Any]], stages: dict[str, list[str]], name: str
) -> None:
    kind, program, *_ = services[name]["healthcheck"]["test"]
    assert kind == "CMD"
    target = _builder(services, name)["target"]
    assert HEALTHCHECK_TOOLS[program] in _installed(stages, target), f"{name}: {program} is not in {target}"


@pytest.mark.parametrize("name", [*sorted(COMPOSE_SERVICES.values()), "orders-migration"])
def test_every_stock_port_is_on_loopback_and_no_stock_image_is_pulled(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    ports = services[name].get("ports", [])
    assert [_host_ip(port) for port in ports] == ["127.0.0.1"] * len(ports)
    assert services[name].get("pull_policy") == "never"  # the sandbox's services build them
    assert IMAGE_VARIABLE.match(services[name]["image"]), services[name]["image"]


@pytest.mark.parametrize(
    ("native", "compose"),
    [("orders", "orders"), ("traffic", "stock-traffic"), ("migration", "orders-migration")],
)
def test_the_stock_python_services_run_the_native_drivers_modules(
    services: dict[str, dict[str, Any]], native: str, compose: str
) -> None:
    assert services[compose]["command"] == ["python", "-m", MODULES[native]]


def test_the_stock_prometheus_configs_scrape_the_same_jobs_in_either_driver() -> None:
    config = REPO_ROOT / "sandbox" / "config"
    native = yaml.safe_load((config / "prometheus.stock.yml").read_text())
    compose = yaml.safe_load((config / "prometheus.stock.compose.yml").read_text())
    jobs = sorted(set(STOCK_JOBS.values()))
    assert sorted(job["job_name"] for job in native["scrape_configs"]) == jobs
    assert sorted(job["job_name"] for job in compose["scrape_configs"]) == jobs
    assert native["global"] == compose["global"]


def test_an_overridden_base_image_reaches_every_build() -> None:
    base = "mirror.example.internal/library/debian:bookworm-slim"
    resolved = _resolved({"DRILLBOOK_BASE_IMAGE": base})["services"]
    builds = [service["build"] for service in resolved.values() if "build" in service]
    assert len(builds) == 4  # postgres, redis, the Python services, the monitoring stack
    assert all(build["args"]["BASE_IMAGE"] == base for build in builds)


def _published(port: str | dict[str, Any]) -> tuple[str, int, int]:
    """(host address, host port, container port) of a port entry of `config`'s output: Compose v2
    writes the long form (a mapping), v1 the short one ("127.0.0.1:41000:8000/tcp")."""
    if isinstance(port, dict):
        return str(port["host_ip"]), int(port["published"]), int(port["target"])
    match = re.fullmatch(r"([^:]+):(\d+):(\d+)(?:/tcp)?", port)
    assert match, f"not a port entry with a host address and a host port: {port!r}"
    return match[1], int(match[2]), int(match[3])


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"host_ip": "127.0.0.1", "published": "41000", "target": 8000, "mode": "ingress"}, 41000),
        ("127.0.0.1:41000:8000/tcp", 41000),
        ("127.0.0.1:41001:8000", 41001),
    ],
)
def test_a_port_entry_reads_the_same_in_either_form(entry: str | dict[str, Any], expected: int) -> None:
    assert _published(entry) == ("127.0.0.1", expected, 8000)


def test_the_ports_the_driver_picks_reach_the_resolved_file() -> None:
    picked = {service: 41000 + index for index, service in enumerate(CONTAINER_PORTS)}
    resolved = _resolved({port_variable(s): str(port) for s, port in picked.items()})["services"]
    for service, container_port in CONTAINER_PORTS.items():
        (published,) = resolved[service]["ports"]
        assert _published(published) == ("127.0.0.1", picked[service], container_port)


def test_an_overridden_image_reaches_the_resolved_file() -> None:
    env = {"DRILLBOOK_POSTGRES_IMAGE": "registry.example.internal/drillbook/postgres:1"}
    resolved = _resolved(env)
    assert resolved["services"]["postgres"]["image"] == "registry.example.internal/drillbook/postgres:1"


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
    picked = [int(env[port_variable(service)]) for service in CONTAINER_PORTS]
    assert len(set(picked)) == len(CONTAINER_PORTS)
    assert all(1024 <= port < 65536 for port in picked)
    assert len(env["DRILLBOOK_ADMIN_TOKEN"]) >= 32
    assert env["DRILLBOOK_CHAOS_TOKEN"] != env["DRILLBOOK_ADMIN_TOKEN"]
    state = read_state(workdir / "state.json")
    assert state["driver"] == "compose"
    assert state["secrets"]["admin_token"] == env["DRILLBOOK_ADMIN_TOKEN"]
    assert state["endpoints"] == driver.seen_endpoints
    assert state["endpoints"]["postgres"].startswith("postgresql://drillbook@127.0.0.1:")
    assert state["platform"]["stop"] == [*driver.base, "stop", "{service}"]
    assert state["platform"]["restart"][:2] == ["sh", "-c"]
    assert state["platform"]["restart"][-1] == "{service}"
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
    assert recorder.verbs() == [
        "stop postgres",
        "start postgres",
        "up --detach --wait --wait-timeout 60 --no-deps --no-build --no-recreate postgres",  # until healthy
        "logs --no-color --tail 5 api",
    ]
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


@pytest.mark.parametrize("verb", ["restart", "start"])
def test_restart_and_start_return_after_compose_waits_for_the_service(
    verb: str, workdir: Path, tmp_path: Path
) -> None:
    """The state's command, run by a real shell against a `docker` that records its argv:
    the verb, then `up --wait` on that service alone; the name stays one argument."""
    OfflineComposeDriver(runner=Recorder()).up(timeout_s=60)
    template = read_state(workdir / "state.json")["platform"][verb]
    service = "api; touch pwned"
    argv = [part.replace("{service}", service) for part in template]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    fake = bin_dir / "docker"
    fake.write_text(f'#!/bin/sh\nfor a in "$@"; do printf "%s|" "$a"; done >> {log}\necho >> {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run(argv, env=env, cwd=tmp_path, check=True, timeout=30)
    calls = [line.rstrip("|").split("|") for line in log.read_text().splitlines()]
    base = ComposeDriver(runner=Recorder()).base[1:]  # after "docker"
    assert calls[0] == [*base, verb, service]
    assert calls[1][: len(base) + 1] == [*base, "up"]
    assert calls[1][-1] == service
    assert {"--wait", "--no-deps", "--no-recreate", "--no-build"} <= set(calls[1])
    assert not (tmp_path / "pwned").exists()
