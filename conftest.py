"""Fixtures for every test and for the runbook notebooks: the sandbox and the targets it gives.

`--sandbox=external` attaches to a sandbox already running (`make test` starts
one and stops it however the tests end); `--sandbox=start` starts one for this
session and stops it after; `auto` (the default) attaches when one runs and
starts one otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checks import Targets
from sandbox import Driver, NotRunning, get_driver, read_state, state_path


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--sandbox",
        choices=("auto", "external", "start"),
        default="auto",
        help="attach to a running sandbox (external), start one (start), or either (auto)",
    )


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
            "Start one with `python -m sandbox up`, or pass --sandbox=start."
        )
    driver = get_driver()
    driver.up()
    try:
        yield driver
    finally:
        driver.down()


@pytest.fixture(scope="session")
def runbook_targets(sandbox: Driver) -> Targets:
    """What runbook notebooks run against: the sandbox, through the same path as any environment."""
    return Targets.from_env("sandbox")
