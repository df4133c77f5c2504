"""What the browser tests measure on a page, shared with `python -m tests.browser.figures`.

- `table_overflow`: how many pixels each table of the article is wider than the article's
  column (0 when it fits), with the page's own horizontal scroll;
- `first_result`: the link of the first result Material's search lists for a query;
- `axe`: an axe-core run (the copy `make vendor` installs for the tests; never served by the site).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "docs" / "overrides" / "vendor" / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Each table's width against the column it lives in. A table inside a scroll box is measured by
# its content (scrollWidth), since the box hides what does not fit.
_OVERFLOW = """() => {
  const article = document.querySelector("article.md-content__inner");
  const column = article.getBoundingClientRect().width;
  return Array.from(article.querySelectorAll("table")).map((table) => {
    const wide = Math.max(table.scrollWidth, table.getBoundingClientRect().width);
    const scroller = table.closest(".md-typeset__table, .md-typeset__scrollwrap");
    const hidden = scroller ? scroller.scrollWidth - scroller.clientWidth : 0;
    return Math.max(0, Math.round(Math.max(wide - column, hidden)));
  });
}"""


def table_overflow(page: Any) -> list[int]:
    """Pixels by which each table of the page's article exceeds its column."""
    result: list[int] = page.evaluate(_OVERFLOW)
    return result


def page_scroll(page: Any) -> int:
    """Pixels by which the whole page scrolls sideways."""
    width: int = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    return max(0, width)


def open_search(page: Any) -> Any:
    page.locator("label.md-search__icon, .md-search__input").first.click()
    field = page.locator("input.md-search__input")
    field.wait_for(state="visible")
    return field


def first_result(page: Any, query: str, *, settle_s: float = 0.4, timeout_s: float = 10.0) -> str:
    """The href of the first search result for `query` ('' when nothing is found).

    The search answers asynchronously: the first link is read until it stays the same for
    `settle_s`, so that the answer to an earlier, shorter query is never taken for this one.
    """
    field = page.locator("input.md-search__input")
    if not field.is_visible():
        open_search(page)
    field.fill(query)
    field.press("End")  # Material searches on keyup, which `fill` does not send
    deadline = time.monotonic() + timeout_s
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        links = page.locator(".md-search-result__item > a")
        current = (links.first.get_attribute("href") or "") if links.count() else ""
        if current != last:
            last, since = current, time.monotonic()
        elif current and time.monotonic() - since >= settle_s:
            return current
        page.wait_for_timeout(100)
    return last or ""


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    targets: tuple[str, ...]
    help: str


def axe(page: Any, *, rules_off: tuple[str, ...] = ()) -> list[Violation]:
    """Every violation axe-core finds on the page as it is now."""
    if not AXE.is_file():
        raise FileNotFoundError(f"{AXE}: run `make vendor` (npm ci installs axe-core for the tests)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    options = {"rules": {rule: {"enabled": False} for rule in rules_off}}
    result = page.evaluate("async (options) => await window.axe.run(document, options)", options)
    return [
        Violation(
            rule=v["id"],
            impact=v.get("impact") or "none",
            targets=tuple(" ".join(map(str, node["target"])) for node in v["nodes"]),
            help=v["help"],
        )
        for v in result["violations"]
    ]


def by_impact(violations: list[Violation]) -> dict[str, int]:
    """Violating nodes counted by impact."""
    counts: Counter[str] = Counter()
    for violation in violations:
        counts[violation.impact] += len(violation.targets)
    return dict(counts)
