"""The deployment of `drillbook receive` as the docs give it: the files say what the CLI does."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def _receive_options() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "receive", "--help"],
        capture_output=True, text=True, timeout=60, check=True, cwd=REPO,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )  # fmt: skip
    return {word.strip(",") for word in done.stdout.split() if word.startswith("--")}


def _options(argv: list[str]) -> set[str]:
    return {word for word in argv if word.startswith("--")}


def test_the_systemd_unit_starts_the_receiver_with_options_it_has_on_loopback() -> None:
    unit = (DEPLOY / "drillbook-receiver.service").read_text(encoding="utf-8")
    [start] = [line.removeprefix("ExecStart=") for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(start)
    assert argv[1:3] == ["receive", "--listen"]
    assert argv[3].startswith("127.0.0.1:")
    assert _options(argv) <= _receive_options()
    assert "EnvironmentFile=" in unit  # secrets from the environment, never in the unit


def test_the_compose_service_runs_the_receiver_and_takes_its_secrets_from_the_environment() -> None:
    service = yaml.safe_load((DEPLOY / "compose.receiver.yaml").read_text(encoding="utf-8"))["services"][
        "drillbook-receiver"
    ]
    assert service["command"][:2] == ["drillbook", "receive"]
    assert _options(service["command"]) <= _receive_options()
    assert all(value.startswith("${") for value in service["environment"].values())
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert (
        REPO / service["build"]["context"].removeprefix("../") / service["build"]["dockerfile"]
    ).is_file() or (DEPLOY.parent / service["build"]["dockerfile"]).is_file()


def test_the_compose_file_validates() -> None:
    binary = ["docker-compose"] if shutil.which("docker-compose") else None
    if binary is None:
        pytest.skip("docker-compose is not installed (apt install docker-compose); CI installs it")
    done = subprocess.run(
        [*binary, "-f", str(DEPLOY / "compose.receiver.yaml"), "config"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "DRILLBOOK_RECEIVER_TOKEN": "a-token"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_alertmanager_example_sends_drillbook_every_alert_with_a_token_from_a_file() -> None:
    config = yaml.safe_load((DEPLOY / "alertmanager.yml").read_text(encoding="utf-8"))
    first = config["route"]["routes"][0]
    assert first == {"receiver": "drillbook", "continue": True}
    [drillbook] = [r for r in config["receivers"] if r["name"] == "drillbook"]
    [hook] = drillbook["webhook_configs"]
    assert hook["url"].endswith("/alerts")
    assert hook["send_resolved"] is True
    assert "credentials_file" in hook["http_config"]["authorization"]
