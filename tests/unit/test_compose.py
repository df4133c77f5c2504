"""compose.yaml describes the same sandbox as the native driver, and Compose accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import SERVICES

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "compose.yaml"


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    found: dict[str, dict[str, Any]] = document["services"]
    return found


def _host_ip(port: str | dict[str, Any]) -> str | None:
    """The host address of a short ("127.0.0.1::8000") or long port entry."""
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else None


def test_compose_services_are_the_native_drivers_services(
    services: dict[str, dict[str, Any]],
) -> None:
    assert sorted(services) == sorted(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck", {})
    assert healthcheck.get("test"), f"{name} has no healthcheck test"
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_publishes_its_port_on_loopback_only(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    ports = services[name].get("ports", [])
    assert ports, f"{name} publishes no port: the driver could not reach it"
    assert [_host_ip(port) for port in ports] == ["127.0.0.1"] * len(ports)


def test_compose_validates_the_file() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt install docker-compose); CI installs it")
    done = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
