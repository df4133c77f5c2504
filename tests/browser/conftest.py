"""Headless Chromium against the built site, served on 127.0.0.1, with every request recorded.

The browser is Debian's chromium (`/usr/bin/chromium`, or `$DRILLBOOK_CHROMIUM`)
driven by Playwright; Playwright's own browser download is never used. The
tests skip when neither Playwright nor a chromium binary is installed.
Screenshots go to `build/screenshots/` (`$DRILLBOOK_SCREENSHOTS` to change it),
kept as test artifacts.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jupytext
import nbformat
import pytest

from drillbook.site.pdf import HEADLESS_FLAGS
from tests.docs.test_site import FIXTURE_RULES, REPO, built, copy_project, mkdocs_build

CHROMIUM_ARGS = list(HEADLESS_FLAGS)
DRILL_SECONDS = 4.8
DRILL_FINISHED = "2026-11-22T08:08:23+00:00"
VERIFIED_AT = "2026-11-22T08:08:37+00:00"
OUTPUT_MARK = "CRIT connection refused by the api at 127.0.0.1"


def chromium_path() -> str | None:
    candidate = os.environ.get("DRILLBOOK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if Path(candidate).is_file() else None


@pytest.fixture(scope="session")
def screenshots() -> Path:
    directory = Path(os.environ.get("DRILLBOOK_SCREENSHOTS") or REPO / "build" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _executed_copy(project: Path, slug: str) -> None:
    """An executed notebook as a verified run leaves it: outputs on every diagnosis cell, run metadata."""
    notebook = jupytext.read(project / "notebooks" / f"{slug}.py")
    notebook.metadata["drillbook"] = {"executed_at": VERIFIED_AT, "status": "ok", "environment": "sandbox"}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            data = {"text/markdown": f"\U0001f534 **{OUTPUT_MARK}**", "text/plain": "CheckResult(CRIT)"}
            cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
            cell.execution_count = 1
    target = project / "build" / "executed" / f"{slug}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)


DRILL_DIAGNOSIS = "CRIT connection refused while the drill held the api down"
DRILL_MITIGATION = "Changed: restarted the api in the sandbox"
FAILED_DRILL_MITIGATION = "Failed: the database did not come back"


def _drill_copy(project: Path, slug: str, fault: str, *, mitigation: str, passed: bool) -> dict[str, Any]:
    """A drill's executed notebook, as the drills leave it in build/drills, and its summary entry."""
    notebook = jupytext.read(project / "notebooks" / f"{slug}.py")
    notebook.metadata["drillbook"] = {"executed_at": DRILL_FINISHED, "status": "ok", "environment": "sandbox"}
    texts = {
        "diagnosis": f"\U0001f534 **health**: {DRILL_DIAGNOSIS}",
        "summary": "**Suggested severity: SEV1**",
        "mitigation": ("\u2705 " if passed else "\u274c ") + mitigation,
        "verify": "\U0001f7e2 **health**: OK. healthy"
        if passed
        else "\U0001f534 **health**: CRIT. still down",
    }
    for cell in notebook.cells:
        tag = next((t for t in texts if t in cell.metadata.get("tags", ())), None)
        if cell.cell_type == "code" and tag:
            data = {"text/markdown": texts[tag], "text/plain": tag}
            cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
    target = project / "build" / "drills" / f"{slug}--{fault}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return {"fault": fault, "passed": passed, "duration_s": DRILL_SECONDS, "finished_at": DRILL_FINISHED}


@pytest.fixture(scope="session")
def site_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built from a copy of the project with rule files, a verified run, a passed drill with
    its notebook (service-down) and a failed one (database-down)."""
    project = copy_project(tmp_path_factory.mktemp("browser-project"), rules=FIXTURE_RULES)
    _executed_copy(project, "service-down")
    summary = {
        "service-down": _drill_copy(
            project, "service-down", "service-down", mitigation=DRILL_MITIGATION, passed=True
        ),
        "database-down": _drill_copy(
            project, "database-down", "db-down", mitigation=FAILED_DRILL_MITIGATION, passed=False
        ),
    }
    (project / "build" / "drills" / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    site_dir = tmp_path_factory.mktemp("browser-site")
    return built(mkdocs_build(project, site_dir), site_dir)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def base_url(site_root: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site_root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Requests:
    """Every URL the browser asked for; anything off 127.0.0.1 (but data:, blob:, file:) is aborted, kept."""

    def __init__(self) -> None:
        self.all: list[str] = []
        self.external: list[str] = []

    def route(self, route: Any) -> None:
        url = route.request.url
        self.all.append(url)
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about", "file") or parts.hostname == "127.0.0.1":
            route.continue_()
        else:
            self.external.append(url)
            route.abort()


@pytest.fixture(scope="session")
def requests_seen() -> Requests:
    return Requests()


# Module scope: the driver runs an event loop in this thread for as long as it is
# open, and no test outside the browser modules should run inside it.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install playwright (no browser download)"
    )
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium: apt-get install -y chromium")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def context(browser: Any, base_url: str, requests_seen: Requests) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url.rstrip("/"))
    context.route("**/*", requests_seen.route)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def page(context: Any) -> Any:
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page
