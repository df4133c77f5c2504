"""The offline bundle (`DRILLBOOK_OFFLINE=true mkdocs build`, zipped by `make offline`) opened from
file:// in headless Chromium: pages link to .html files, search works, and nothing is fetched
from another host."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest

from drillbook.site.bundle import bundle as bundle_site
from tests.browser._audit import first_result
from tests.browser.conftest import Requests
from tests.browser.symptoms import SYMPTOM_QUERIES
from tests.docs.test_site import REPO, built, copy_project, mkdocs_build


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle as a user gets it: built offline, zipped, unzipped somewhere else."""
    if not (REPO / "docs" / "assets" / "vendor" / "iframe-worker" / "shim.js").is_file():
        pytest.skip("the offline bundle needs `make vendor` (iframe-worker for search from file://)")
    project = copy_project(tmp_path_factory.mktemp("offline-project"))
    site_dir = tmp_path_factory.mktemp("offline-site")
    built(mkdocs_build(project, site_dir, {"DRILLBOOK_OFFLINE": "true"}), site_dir)
    archive = bundle_site(site_dir, tmp_path_factory.mktemp("offline-zip") / "drillbook-offline.zip")
    unpacked = tmp_path_factory.mktemp("offline-unpacked")
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        zipped.extractall(unpacked)
    assert {name.split("/", 1)[0] for name in names} == {"drillbook-offline"}, (
        "the zip unpacks into one folder"
    )
    assert sorted(p.name for p in unpacked.iterdir()) == ["drillbook-offline"]
    return unpacked / "drillbook-offline"


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
        # The symptoms lead to their runbook from file:// as they do on the site.
        for query, slug in SYMPTOM_QUERIES[::6]:
            assert f"runbooks/{slug}.html" in first_result(page, query), query
        page.goto((bundle / "print.html").as_uri())
        assert page.locator("h2", has_text="Service down").count() == 1
    finally:
        context.close()
    assert requests_seen.external[before:] == []
