"""The offline bundle (`DRILLBOOK_OFFLINE=true mkdocs build`, zipped by `make offline`) opened from
file:// in headless Chromium: pages link to .html files, search works, and nothing is fetched
from another host."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import Requests
from tests.docs.test_site import REPO, built, copy_project, mkdocs_build


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as a user gets it: built offline, zipped, unzipped somewhere else."""
    if not (REPO / "docs" / "assets" / "vendor" / "iframe-worker" / "shim.js").is_file():
        pytest.skip("the offline bundle needs `make vendor` (iframe-worker for search from file://)")
    project = copy_project(tmp_path_factory.mktemp("offline-project"))
    site_dir = tmp_path_factory.mktemp("offline-site")
    built(mkdocs_build(project, site_dir, {"DRILLBOOK_OFFLINE": "true"}), site_dir)
    archive = tmp_path_factory.mktemp("offline-zip") / "drillbook-offline.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(site_dir.rglob("*")):
            zipped.write(path, path.relative_to(site_dir))
    unpacked = tmp_path_factory.mktemp("offline-unpacked")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    return unpacked


def test_offline_bundle_searches_from_file_urls(
    browser: Any, bundle: Path, requests_seen: Requests, screenshots: Path
) -> None:
    context = browser.new_context()
    context.route("**/*", requests_seen.route)
    before = len(requests_seen.external)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto((bundle / "index.html").as_uri())
        page.locator("label.md-search__icon, .md-search__input").first.click()
        page.locator("input.md-search__input").press_sequentially("scrape", delay=30)
        result = page.locator(".md-search-result__item").filter(has_text="Service down").first
        result.wait_for()
        href = result.locator("a").first.get_attribute("href") or ""
        assert "runbooks/service-down.html" in href
        page.screenshot(path=str(screenshots / "offline-search.png"))
        page.goto((bundle / "print.html").as_uri())
        assert page.locator("h2", has_text="Service down").count() == 1
    finally:
        context.close()
    assert requests_seen.external[before:] == []
