"""`make print`: the offline site's print page as one PDF, printed by Chromium twice so that its
contents give the page of every section; severity and escalation first, then the runbooks by
severity and title. The PDF is opened in Chromium's own viewer for the screenshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from checks import load_severity
from drillbook.site import by_severity, read_runbook_pages, section_id
from drillbook.site.pdf import make_pdf, page_count, pages_query, section_pages
from tests.browser.conftest import chromium_path
from tests.docs.test_site import REPO, built, copy_project, mkdocs_build

ORDER = [
    "print-severity",
    "print-escalation",
    *(
        section_id(page.slug)
        for page, _ in by_severity(
            read_runbook_pages(REPO / "docs" / "runbooks"), load_severity(REPO / "policy" / "severity.yml")
        )
    ),
]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    if chromium_path() is None:
        pytest.skip("no chromium: apt-get install -y chromium")
    project = copy_project(tmp_path_factory.mktemp("print-project"))
    site = tmp_path_factory.mktemp("print-site")
    built(mkdocs_build(project, site, {"DRILLBOOK_OFFLINE": "true"}), site)
    pdf = tmp_path_factory.mktemp("print-pdf") / "runbooks.pdf"
    return site, pdf, make_pdf(site, pdf, browser=chromium_path())


def test_sections_are_severity_escalation_then_runbooks_by_severity_and_title(
    printed: tuple[Path, Path, dict[str, int]],
) -> None:
    _, pdf, pages = printed
    assert list(pages) == sorted(pages, key=ORDER.index)  # every section the contents list, no other
    assert set(pages) == set(ORDER)
    starts = [pages[name] for name in ORDER]
    assert starts == sorted(starts)
    assert len(set(starts[2:])) == len(starts) - 2, "every runbook starts a page of its own"
    assert starts[0] == 2, "the contents fill the first page"
    assert page_count(pdf.read_bytes()) > starts[-1]
    assert section_pages(pdf.read_bytes()) == pages


def test_the_contents_give_each_section_its_page(
    browser: Any, printed: tuple[Path, Path, dict[str, int]], screenshots: Path
) -> None:
    site, pdf, pages = printed
    context = browser.new_context(viewport={"width": 900, "height": 1200})
    try:
        page = context.new_page()
        page.goto(f"{(site / 'print.html').as_uri()}?{pages_query(pages)}")
        for name, number in pages.items():
            slot = page.locator(f'.drillbook-toc-page[data-page-of="{name}"]')
            assert slot.inner_text().strip() == str(number), name
        # Chromium's PDF viewer, for the record: page 1 (the contents) and the first runbook.
        for label, number in (("contents", 1), ("first-runbook", pages[ORDER[2]])):
            page.goto(f"{pdf.as_uri()}#page={number}")
            page.wait_for_timeout(2500)
            page.screenshot(path=str(screenshots / f"print-{label}.png"))
    finally:
        context.close()
