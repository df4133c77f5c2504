"""Fixtures for every test and for the runbook notebooks: the sandbox and the targets it gives.

`--sandbox=external` attaches to a sandbox already running (`make test` starts
one and stops it however the tests end); `--sandbox=start` starts one for this
session and stops it after; `auto` (the default) attaches when one runs and
starts one otherwise.

Under pytest-xdist (`make test` runs `-n N`), worker K takes sandbox replica K
(`python -m sandbox up --replicas N` starts them), so that a drill on one worker never
sees another worker's fault; tests/scheduling.py says how the tests are shared out.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks import Targets
from sandbox import Driver, NotRunning, get_driver, read_state, state_path, use_replica


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sandbox",
        choices=("auto", "external", "start"),
        default="auto",
        help="attach to a running sandbox (external), start one (start), or either (auto)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Pin this process's sandbox before any fixture, for every kernel and command too.

    Pinned even for replica 0: otherwise its state file is found beside the policy folder,
    and a test that points DRILLBOOK_POLICY_DIR at a copy would lose the sandbox."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... on a worker
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    if index or "DRILLBOOK_SANDBOX_STATE" not in os.environ:  # a named state file is kept
        use_replica(os.environ, index)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest units of work first, so that under pytest-xdist the short ones fill the
    gaps at the end: the sandbox's own integration modules and the stock stack's (a stack
    each, about two minutes for the fault catalogue), then the drills, then the rest."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(("tests/integration/", "tests/stock/")):  # a stack each
            return 0
        return 1 if item.get_closest_marker("drill") else 2

    items.sort(key=rank)


if importlib.util.find_spec("xdist") is not None:  # a dev dependency; without it, one process

    def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
        from tests.scheduling import SandboxScheduling

        return SandboxScheduling(config, log)


@pytest.fixture(scope="session")
def sandbox(request: pytest.FixtureRequest) -> Iterator[Driver]:
    mode = request.config.getoption("sandbox")
    try:
        read_state(state_path())
        running = True
    except NotRunning:
        running = False
    if running and mode in ("auto", "external"):
        yield get_driver()
        return
    if mode == "external":
        raise pytest.UsageError(
            f"--sandbox=external, but no sandbox runs (no {state_path()}). "
            "Start one with `python -m sandbox up` (with `--replicas N` for `-n N` workers), "
            "or pass --sandbox=start."
        )
    driver = get_driver()
    driver.up()
    try:
        yield driver
    finally:
        driver.down()


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary folder of the test's own that is also the process's TMPDIR, so that a
    test can look for what kernels leave behind there. Short on purpose: pytest's own
    per-test folders can be too deep for a kernel's unix socket paths."""
    folder = Path(tempfile.mkdtemp(prefix="scratch-"))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def runbook_targets(sandbox: Driver) -> Targets:
    """What runbook notebooks run against: the sandbox, through the same path as any environment."""
    return Targets.from_env("sandbox")
