"""The site as a responder uses it at 3 a.m., on a laptop (1280 px) and on a phone (390 px):
a runbook opens with its summary, every table fits, search finds a runbook by its symptom,
the pages pass axe-core, and every control shows where the keyboard is.

Screenshots of every check go to build/screenshots/ for review.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checks import format_duration, load_environments, load_severity
from drillbook.site import incident_environment, read_runbook_pages, run_command
from drillbook.site._by_hand import BY_HAND_TITLE
from tests.browser._audit import (
    AXE,
    DESKTOP,
    PHONE,
    axe,
    first_result,
    open_search,
    page_scroll,
    table_overflow,
)
from tests.browser.conftest import DRILL_MITIGATION, DRILL_SECONDS, FAILED_DRILL_MITIGATION, Requests
from tests.browser.symptoms import SYMPTOM_QUERIES
from tests.docs.test_site import REPO

POLICY = load_severity(REPO / "policy" / "severity.yml")
RUNBOOKS = {page.slug: page for page in read_runbook_pages(REPO / "docs" / "runbooks")}
ENVIRONMENT = incident_environment(load_environments(REPO / "policy" / "environments.yml"))
VIEWPORTS = {"1280": DESKTOP, "390": PHONE}
TABLE_PAGES = (
    "runbooks/",
    "alerts/",
    "severity/",
    "escalation/",
    "templates/",
    "runbooks/database-connections/",
)
OWN_TABLES = ".drillbook-catalogue table, .drillbook-alerts table, .drillbook-severity-matrix table"
AXE_PAGES = ("", "runbooks/", "alerts/", "severity/", "escalation/", "templates/", "runbooks/service-down/")


def _name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "home"


@pytest.fixture(params=sorted(VIEWPORTS), ids=lambda width: f"{width}px")
def width(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sized(browser: Any, requests_seen: Requests, width: str) -> Iterator[Any]:
    """A page at `width` (a phone is a touch device) whose requests stay on 127.0.0.1."""
    context = browser.new_context(
        viewport=VIEWPORTS[width], is_mobile=width == "390", has_touch=width == "390"
    )
    context.route("**/*", requests_seen.route)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
    finally:
        context.close()


# --------------------------------------------------------------------------- the runbook summary


def test_runbook_page_opens_with_its_summary(
    sized: Any, width: str, base_url: str, screenshots: Path
) -> None:
    runbook = RUNBOOKS["service-down"]
    level = POLICY.level(runbook.severity)
    sized.goto(base_url + "runbooks/service-down/")
    summary = sized.locator("article h1 + section.drillbook-summary")
    assert summary.count() == 1, "the summary is not the first thing under the title"
    text = " ".join(summary.inner_text().split())
    assert level.label in text
    assert f"acknowledge within {format_duration(level.acknowledge_within)}" in text
    assert f"update every {format_duration(level.update_every)}" in text
    assert runbook.owner in text
    assert ", ".join(runbook.services) in text
    for symptom in runbook.symptoms:
        assert symptom in text
    for alert in runbook.alerts:
        href = summary.locator("a", has_text=alert).get_attribute("href") or ""
        assert href.endswith(f"alerts/#alert-{alert}"), href
    command = summary.locator(".drillbook-summary__run code")
    assert command.inner_text().strip() == run_command("service-down", ENVIRONMENT)
    assert "Passed 2026-11-22 08:08 UTC" in text, "the last verified run and how it went"
    assert "drill passed in 4.8 s" in text
    due = runbook.review_due()
    assert due is not None
    assert due.isoformat() in text
    # Read in ten seconds: the one command is on the first screen, without scrolling.
    box = command.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] <= VIEWPORTS[width]["height"], box
    sized.screenshot(path=str(screenshots / f"runbook-summary-{width}.png"))


def test_each_step_shows_what_to_run_by_hand_in_a_fold_that_fits_a_phone(
    sized: Any, width: str, base_url: str, screenshots: Path
) -> None:
    """When drillbook itself is what is broken, the query of a step is one tap away, and the
    page still does not scroll sideways with it open (long lines scroll inside their block)."""
    sized.goto(base_url + "runbooks/database-connections/")
    folds = sized.locator("details", has_text=BY_HAND_TITLE)
    assert folds.count() >= 7, "a fold beside every diagnosis step"
    fold = folds.filter(has_text="pg_stat_activity").first  # the SQL of check_connections
    assert not fold.locator("pre").first.is_visible(), "the fold starts closed"
    fold.locator("summary").click()
    assert "psql " in fold.inner_text()
    overflow = sized.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow} px with the fold open"
    fold.screenshot(path=str(screenshots / f"runbook-by-hand-{width}.png"))


def test_steps_are_numbered_once_across_the_page(page: Any, base_url: str) -> None:
    page.goto(base_url + "runbooks/database-connections/")
    numbers = [int(n) for n in re.findall(r"\bStep (\d+)\.", page.locator("article").inner_text())]
    assert len(numbers) >= 8
    assert numbers == list(range(1, len(numbers) + 1)), numbers


def test_the_summary_alert_link_leads_to_the_rule(page: Any, base_url: str) -> None:
    page.goto(base_url + "runbooks/service-down/")
    page.locator(".drillbook-summary a", has_text="ServiceDown").click()
    page.wait_for_url(re.compile(r"alerts/#alert-ServiceDown$"))
    assert page.locator("#alert-ServiceDown").count() == 1


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("path", TABLE_PAGES, ids=_name)
def test_every_table_fits_its_column(
    sized: Any, width: str, path: str, base_url: str, screenshots: Path
) -> None:
    sized.goto(base_url + path)
    sized.wait_for_load_state("load")
    overflow = table_overflow(sized)
    assert overflow, f"{path} has no table"
    assert overflow == [0] * len(overflow), (
        f"{path} at {width} px: tables wider than the column by {overflow} px"
    )
    assert page_scroll(sized) == 0
    if width == "1280":  # on a laptop the site's own tables are tables, not the phone's cards
        assert sized.locator(f":is({OWN_TABLES}).drillbook-cards").count() == 0
    sized.screenshot(path=str(screenshots / f"table-{_name(path)}-{width}.png"), full_page=True)


def test_catalogue_runbook_links_are_on_screen(sized: Any, width: str, base_url: str) -> None:
    sized.goto(base_url + "runbooks/")
    rows = sized.locator("#drillbook-catalogue tbody tr")
    assert rows.count() == len(RUNBOOKS)
    for index in range(rows.count()):
        link = rows.nth(index).locator("td").first.locator("a").first
        assert link.is_visible()
        box = link.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= VIEWPORTS[width]["width"]


def test_alert_names_link_to_their_runbook(page: Any, base_url: str, screenshots: Path) -> None:
    page.goto(base_url + "alerts/")
    rows = page.locator(".drillbook-alerts tbody tr")
    linked = 0
    for index in range(rows.count()):
        first = rows.nth(index).locator("td").first
        name = first.locator("strong").inner_text().replace("\u200b", "")
        links = first.locator("a")
        if links.count():
            linked += 1
            href = links.first.get_attribute("href") or ""
            assert re.search(r"runbooks/[a-z0-9-]+/$", href), f"{name}: {href}"
    assert linked >= 1
    page.locator(".drillbook-alerts a", has_text="ServiceDown").first.click()
    page.wait_for_url(re.compile(r"runbooks/service-down/$"))


def test_catalogue_alerts_link_to_their_rule(page: Any, base_url: str) -> None:
    page.goto(base_url + "runbooks/")
    link = page.locator("#drillbook-catalogue a", has_text="ServiceDown").first
    assert re.search(r"alerts/#alert-ServiceDown$", link.get_attribute("href") or "")


# --------------------------------------------------------------------------- search by symptom


def test_a_symptom_finds_its_runbook_first(page: Any, base_url: str, screenshots: Path) -> None:
    assert len(SYMPTOM_QUERIES) >= 20
    page.goto(base_url)
    open_search(page)
    missed = {}
    for query, slug in SYMPTOM_QUERIES:
        href = first_result(page, query)
        if f"runbooks/{slug}/" not in href:
            missed[query] = (slug, href)
    first_result(page, "idle in transaction")
    page.screenshot(path=str(screenshots / "search-idle-in-transaction.png"))
    ranked = len(SYMPTOM_QUERIES) - len(missed)
    assert not missed, f"{ranked} of {len(SYMPTOM_QUERIES)} ranked first; missed: {missed}"


def test_catalogue_filter_finds_a_runbook_by_its_symptom(page: Any, base_url: str) -> None:
    page.goto(base_url + "runbooks/")
    page.locator("input.drillbook-filter").fill("idle")
    visible = page.locator("#drillbook-catalogue tbody tr:visible")
    assert visible.count() == 1
    assert "Database connections" in visible.first.inner_text()


# --------------------------------------------------------------------------- accessibility


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", AXE_PAGES, ids=_name)
def test_axe_finds_nothing_serious(
    browser: Any, requests_seen: Requests, width: str, scheme: str, path: str, base_url: str
) -> None:
    if not AXE.is_file():
        pytest.skip("axe-core is installed by `make vendor` (npm ci in docs/overrides/vendor)")
    context = browser.new_context(viewport=VIEWPORTS[width], color_scheme=scheme)
    context.route("**/*", requests_seen.route)
    try:
        page = context.new_page()
        page.goto(base_url + path)
        page.wait_for_load_state("networkidle")
        found = [v for v in axe(page) if v.impact in ("serious", "critical")]
    finally:
        context.close()
    assert not found, "\n".join(f"{v.impact} {v.rule}: {v.help} at {', '.join(v.targets[:5])}" for v in found)


_FOCUS_RING = """() => {
  const el = document.activeElement;
  // Material's palette switch is a visually hidden radio input: its label shows the focus.
  const style = getComputedStyle(el.classList.contains("md-option") ? el.nextElementSibling : el);
  const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
  const ring = style.boxShadow && style.boxShadow !== "none";
  const name = (el.getAttribute("aria-label") || el.textContent || el.name || "").trim().slice(0, 40);
  const seen = style.outlineStyle + " " + style.outlineWidth;
  return {tag: el.tagName, name: name, cls: el.className, id: el.id, outline: seen, shown: outline || ring};
}"""


@pytest.mark.parametrize("path", ["templates/", "runbooks/"], ids=_name)
def test_every_control_shows_keyboard_focus(page: Any, base_url: str, path: str, screenshots: Path) -> None:
    page.goto(base_url + path)
    unseen = []
    controls = page.locator(".md-content input, .md-content select, .md-content button").count()
    for _ in range(controls + 40):
        page.keyboard.press("Tab")
        focused = page.evaluate(_FOCUS_RING)
        if focused["tag"] in ("INPUT", "SELECT", "BUTTON", "A", "SUMMARY") and not focused["shown"]:
            unseen.append(focused)
    assert not unseen, f"controls without a visible focus ring: {unseen}"
    page.locator("input.drillbook-filter, #drillbook-field-title").first.focus()
    page.screenshot(path=str(screenshots / f"focus-{_name(path)}.png"))


def test_status_is_text_and_shapes_not_emoji(page: Any, base_url: str) -> None:
    page.goto(base_url + "runbooks/service-down/")
    text = page.locator("article").text_content() or ""
    assert "CRIT connection refused" in text
    assert page.locator("article .drillbook-mark--crit").count() >= 1
    emoji = re.findall("[\U0001f300-\U0001faff\u26aa\u26ab]", text)
    assert not emoji, f"emoji on the page: {emoji}"


# --------------------------------------------------------------------------- drill evidence


def test_last_verified_shows_what_the_drill_saw_and_did(
    sized: Any, width: str, base_url: str, screenshots: Path
) -> None:
    sized.goto(base_url + "runbooks/service-down/")
    drill = sized.locator("details.success").filter(
        has=sized.locator(":scope > summary", has_text="Drill passed")
    )
    assert drill.count() == 1
    title = drill.locator(":scope > summary").inner_text()
    assert "fault service-down" in title
    assert "2026-11-22 08:08 UTC" in title
    assert f"{DRILL_SECONDS:.1f} s" in title
    drill.locator(":scope > summary").click()
    text = drill.inner_text()
    assert "With the fault injected, the diagnosis reported" in text
    assert DRILL_MITIGATION in text
    assert "Afterwards the checks saw" in text
    drill.scroll_into_view_if_needed()
    sized.screenshot(path=str(screenshots / f"drill-evidence-passed-{width}.png"))


def test_a_failed_drill_is_shown_as_a_failure(
    sized: Any, width: str, base_url: str, screenshots: Path
) -> None:
    sized.goto(base_url + "runbooks/database-down/")
    badge = sized.locator("article .admonition").first
    assert "failure" in (badge.get_attribute("class") or "")
    title = badge.locator(".admonition-title").inner_text()
    assert title.startswith("Not verified: drill failed: fault db-down"), title
    assert "Verified against" not in sized.locator("article").inner_text()
    drill = sized.locator("details.failure[open]").filter(
        has=sized.locator(":scope > summary", has_text="Drill FAILED")
    )
    assert drill.count() == 1, "a failed drill's evidence is open"
    assert FAILED_DRILL_MITIGATION in drill.inner_text()
    summary = sized.locator(".drillbook-summary__verified-failed")
    assert "Failed" in summary.inner_text()
    drill.scroll_into_view_if_needed()
    sized.screenshot(path=str(screenshots / f"drill-evidence-failed-{width}.png"))
