"""The built site in headless Chromium: search, the policy's matrix, the template form, copy,
a verified runbook page, Mermaid ladders, the catalogue filter, phone and dark mode, and no
request that leaves 127.0.0.1."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from checks import format_duration, load_severity
from tests.browser.conftest import DRILL_SECONDS, OUTPUT_MARK, Requests
from tests.docs.test_site import REPO

POLICY = load_severity(REPO / "policy" / "severity.yml")
FORM = {"title": "Checkout answers 502", "impact": "payments fail for every customer", "lead": "Robin Ops"}
START = "2026-11-22T07:45"


def shot(page: Any, screenshots: Path, name: str) -> None:
    page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)


def test_search_finds_a_runbook_by_a_symptom_word(page: Any, base_url: str, screenshots: Path) -> None:
    page.goto(base_url)
    page.locator("label.md-search__icon, .md-search__input").first.click()
    page.locator("input.md-search__input").press_sequentially("scrape", delay=30)
    results = page.locator(".md-search-result__item")
    results.filter(has_text="Service down").first.wait_for()
    shot(page, screenshots, "search-scrape")
    link = results.filter(has_text="Service down").first.locator("a").first.get_attribute("href") or ""
    assert "runbooks/service-down/" in link


def test_severity_matrix_shows_the_policy_values(page: Any, base_url: str, screenshots: Path) -> None:
    page.goto(base_url + "severity/")
    rows = page.locator(".drillbook-severity-matrix table tbody tr")
    assert rows.count() == len(POLICY.levels)
    header = [
        cell.strip() for cell in page.locator(".drillbook-severity-matrix table thead th").all_inner_texts()
    ]
    for index, level in enumerate(POLICY.levels):
        cells = dict(zip(header, rows.nth(index).locator("td").all_inner_texts(), strict=True))
        assert cells["Level"].startswith(level.id)
        assert cells["Acknowledge within"] == format_duration(level.acknowledge_within)
        assert cells["Resolve within"] == format_duration(level.resolve_within)
        assert cells["Update every"] == format_duration(level.update_every)
    shot(page, screenshots, "severity")


def _fill_form(page: Any, severity: str) -> None:
    for name, value in FORM.items():
        page.locator(f"#drillbook-field-{name}").fill(value)
    page.locator("#drillbook-field-start_time").fill(START)
    page.locator("#drillbook-field-severity").select_option(severity)


def test_what_was_typed_in_the_template_form_survives_a_reload_and_goes_with_reset(
    page: Any, base_url: str
) -> None:
    page.goto(base_url + "templates/")
    _fill_form(page, "SEV2")
    page.reload()
    assert page.locator("#drillbook-field-title").input_value() == FORM["title"]
    assert page.locator("#drillbook-field-severity").input_value() == "SEV2"
    texts = page.locator("pre.drillbook-template code").all_inner_texts()
    assert any(FORM["title"] in text for text in texts), "the templates are filled again after the reload"
    page.evaluate("document.getElementById('drillbook-template-form').reset()")
    page.reload()
    assert page.locator("#drillbook-field-title").input_value() == ""


def _next_update_due(page: Any) -> float:
    value = page.locator("#drillbook-template-form").get_attribute("data-next-update-due")
    assert value, "the form did not compute the next update"
    return int(value) / 1000


def test_template_form_fills_every_template_and_follows_the_severity(
    page: Any, base_url: str, screenshots: Path
) -> None:
    page.goto(base_url + "templates/")
    templates = page.locator("pre.drillbook-template code")
    count = templates.count()
    assert count >= 12, f"expected every template to be fillable, found {count}"
    before = time.time()
    _fill_form(page, "SEV1")
    after = time.time()
    texts = templates.all_inner_texts()
    for placeholder in (
        "title",
        "severity",
        "impact",
        "start_time",
        "lead",
        "update_every",
        "next_update_due",
    ):
        for text in texts:
            assert f"[[{placeholder}]]" not in text, f"[[{placeholder}]] left in:\n{text}"
    assert all(FORM["title"] in text for text in texts if "Post-mortem:" in text or "Incident report" in text)
    assert sum(FORM["title"] in text for text in texts) >= count - 1  # the agenda names the title too
    assert any("2026-11-22 07:45 UTC" in text for text in texts)
    sev1, sev3 = POLICY.level("SEV1"), POLICY.level("SEV3")
    due = _next_update_due(page)
    assert (
        before + sev1.update_every.total_seconds() - 1 <= due <= after + sev1.update_every.total_seconds() + 1
    )
    announcement = next(text for text in texts if text.startswith("INCIDENT "))
    assert f"Updates every {format_duration(sev1.update_every)}" in announcement
    assert announcement.startswith(f"INCIDENT {sev1.label} \u2013 {FORM['title']}")
    shot(page, screenshots, "templates-sev1")

    page.locator("#drillbook-field-severity").select_option("SEV3")
    due3 = _next_update_due(page)
    assert due3 - due == pytest.approx((sev3.update_every - sev1.update_every).total_seconds(), abs=5)
    computed = page.locator('[data-placeholder="update_every"]').inner_text()
    assert computed == format_duration(sev3.update_every)
    assert (
        f"Updates every {format_duration(sev3.update_every)}"
        in templates.all_inner_texts()[texts.index(announcement)]
    )


def test_copy_button_copies_the_filled_template(page: Any, base_url: str) -> None:
    page.goto(base_url + "templates/")
    _fill_form(page, "SEV2")
    block = page.locator("pre.drillbook-template").first
    expected = block.locator("code").inner_text()
    block.hover()
    block.locator("button[data-md-type=copy]").click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.strip() == expected.strip()
    assert FORM["title"] in copied
    assert "[[title]]" not in copied


def test_runbook_page_shows_step_outputs_and_its_badge(page: Any, base_url: str, screenshots: Path) -> None:
    page.goto(base_url + "runbooks/service-down/")
    badge = page.locator(".admonition.success .admonition-title").first
    text = badge.inner_text()
    assert "Verified against the sandbox on 2026-11-22 08:08 UTC" in text
    assert f"drill passed in {DRILL_SECONDS} s" in text
    outputs = page.locator("details", has_text="Output of the last verified run")
    assert outputs.count() >= 1
    outputs.first.locator("summary").click()
    assert OUTPUT_MARK in outputs.first.inner_text()
    assert page.locator("pre code", has_text="check_health").count() >= 1
    shot(page, screenshots, "runbook-service-down")


def require_vendored(file: str, library: str) -> None:
    """Skip unless `make vendor` has put `file` (`library`) where the site serves it from."""
    if not (REPO / "docs" / "assets" / "vendor" / file).is_file():
        pytest.skip(f"{library} is not bundled in this checkout: run `make vendor`")


def test_code_is_coloured_in_the_browser_by_the_local_highlighter(
    page: Any, base_url: str, screenshots: Path
) -> None:
    require_vendored("highlight.min.js", "highlight.js")
    page.goto(base_url + "runbooks/service-down/")
    string = page.locator("pre code.language-python .hljs-string").first
    string.wait_for()
    colour = string.evaluate("element => getComputedStyle(element).color")
    plain = string.evaluate("element => getComputedStyle(element.closest('code')).color")
    assert colour != plain  # Material's string colour, not the code's own
    shot(page, screenshots, "runbook-code-colours")


def test_escalation_ladders_are_drawn_from_the_local_mermaid(
    page: Any, base_url: str, screenshots: Path
) -> None:
    require_vendored("mermaid.min.js", "Mermaid")
    page.goto(base_url + "escalation/")
    page.locator(".drillbook-ladder svg").first.wait_for()
    assert page.locator(".drillbook-ladder svg").count() == len(POLICY.levels)
    # The ladder is drawn once as a table (by elapsed time) and once as pictures, side by side
    # on a laptop, not a third time as a table per level: only that table and the contacts.
    assert page.locator("article table").count() == 2
    first, second = (page.locator(".drillbook-ladder-figure").nth(i).bounding_box() for i in (0, 1))
    assert first is not None
    assert second is not None
    assert first["y"] == second["y"]
    assert second["x"] > first["x"] + first["width"] / 2
    shot(page, screenshots, "escalation")


def test_catalogue_filter_keeps_matching_runbooks(page: Any, base_url: str) -> None:
    page.goto(base_url + "runbooks/")
    rows = page.locator("#drillbook-catalogue tbody tr")
    page.locator("input.drillbook-filter").fill("ServiceDown")
    assert rows.filter(has_text="Service down").first.is_visible()
    page.locator("input.drillbook-filter").fill("no-such-symptom-anywhere")
    assert all(not rows.nth(i).is_visible() for i in range(rows.count()))


def test_phone_viewport_in_dark_mode(
    browser: Any, base_url: str, requests_seen: Requests, screenshots: Path
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True)
    context.route("**/*", requests_seen.route)
    try:
        page = context.new_page()
        page.goto(base_url + "runbooks/service-down/")
        assert page.locator("body").get_attribute("data-md-color-scheme") == "slate"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390 + 1, f"the page scrolls sideways on a phone: {width}px"
        shot(page, screenshots, "phone-dark-runbook")
        page.goto(base_url + "templates/")
        shot(page, screenshots, "phone-dark-templates")
    finally:
        context.close()


def test_no_request_left_127_0_0_1(requests_seen: Requests) -> None:
    """Runs last in this module: everything the tests above browsed stayed on the local server."""
    assert requests_seen.all, "the browser tests made no request at all"
    assert not requests_seen.external, "requests to other hosts:\n" + "\n".join(requests_seen.external)
    assert not [url for url in requests_seen.all if re.search(r"unpkg|jsdelivr|googleapis|gstatic", url)]
