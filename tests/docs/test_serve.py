"""`make serve`, the README's first command, serves the whole site with live reload.

The test starts `make serve` itself (not `mkdocs serve` with options of its own), on a
free loopback port, and reads a runbook page and the alerts page from it. `mkdocs serve`
replaces `site_url` with its own address, so this is also where a check that depends on
that address would break the command a new user types first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from drillbook.site import read_alert_rules, read_runbook_pages
from sandbox._ports import pick_port
from tests.docs.test_site import REPO

# `make serve` builds the whole site before it answers; on 2 cores that takes seconds.
SERVE_DEADLINE_S = 180.0
POLL_INTERVAL_S = 0.5
RUNBOOK = "service-down"


def _output(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.read()[-3000:]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """The address of `make serve`, once it answers; the server and its children are stopped after."""
    address = f"127.0.0.1:{pick_port()}"  # one that no sandbox starting meanwhile takes
    # Run as a user would: not as a sub-make of `make test`, whose flags would leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    process = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"SERVE_ADDR={address}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # one process group: make, mkdocs and its watcher
    )
    url = f"http://{address}/"
    try:
        deadline = time.monotonic() + SERVE_DEADLINE_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"make serve exited with {process.returncode}:\n{_output(process)}")
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGTERM)
                pytest.fail(f"make serve did not answer on {url} within {SERVE_DEADLINE_S:.0f} s:\n"
                            f"{_output(process)}")  # fmt: skip
            time.sleep(POLL_INTERVAL_S)  # poll interval of the deadline loop above
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_make_serve_serves_a_runbook_page_with_live_reload(served: str) -> None:
    (page,) = [p for p in read_runbook_pages(REPO / "docs" / "runbooks") if p.slug == RUNBOOK]
    response = httpx.get(f"{served}runbooks/{RUNBOOK}/", timeout=10.0)
    assert response.status_code == 200
    assert page.title in response.text
    assert "livereload" in response.text, "mkdocs serve injects its live-reload script into every page"


def test_make_serve_serves_the_alerts_page_with_every_rule(served: str) -> None:
    rules = read_alert_rules([REPO / "sandbox" / "config" / "rules" / "alerts.yml"])
    assert rules, "the sandbox's rule file has alert rules"
    response = httpx.get(f"{served}alerts/", timeout=10.0)
    assert response.status_code == 200
    missing = [rule.name for rule in rules if rule.name not in response.text]
    assert not missing, f"the alerts page served by make serve lacks {missing}"
    assert 'href="../runbooks/service-down/"' in response.text
