"""The figures the browser tests hold the site to: `python -m tests.browser.figures SITE_DIR`.

`python -m tests.browser.figures SITE_DIR search` measures the search only. Prints, as JSON:
table overflow in px per page at 1280 and 390 px, how many symptom
queries put their runbook first, and axe-core violations by impact at both widths.
"""

from __future__ import annotations

import functools
import json
import sys
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from tests.browser._audit import DESKTOP, PHONE, axe, first_result, open_search, page_scroll, table_overflow
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.browser.symptoms import SYMPTOM_QUERIES

PAGES = (
    "",
    "severity/",
    "escalation/",
    "alerts/",
    "runbooks/",
    "templates/",
    "runbooks/database-connections/",
)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _local_only(route: Any) -> None:
    parts = urlsplit(route.request.url)
    if parts.hostname == "127.0.0.1" or parts.scheme in ("data", "blob", "about"):
        route.continue_()
    else:
        route.abort()


def measure(site: str, parts: tuple[str, ...] = ("tables", "search")) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=site))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    figures: dict[str, Any] = {"overflow": {}, "page_scroll": {}, "axe": {}}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            for name, viewport in (("1280", DESKTOP), ("390", PHONE)) if "tables" in parts else ():
                context = browser.new_context(viewport=viewport)
                context.route("**/*", _local_only)
                page = context.new_page()
                impacts: Counter[str] = Counter()
                for path in PAGES:
                    page.goto(base + path)
                    page.wait_for_load_state("networkidle")
                    figures["overflow"].setdefault(path or "/", {})[name] = table_overflow(page)
                    figures["page_scroll"].setdefault(path or "/", {})[name] = page_scroll(page)
                    for violation in axe(page):
                        impacts[violation.impact] += len(violation.targets)
                        figures["axe"].setdefault("rules", {}).setdefault(
                            f"{violation.impact}:{violation.rule}", set()
                        ).add(path or "/")
                figures["axe"][name] = dict(impacts)
                context.close()
            context = browser.new_context(viewport=DESKTOP)
            context.route("**/*", _local_only)
            page = context.new_page()
            page.goto(base)
            open_search(page)
            ranks = {}
            for query, slug in SYMPTOM_QUERIES if "search" in parts else ():
                ranks[query] = (first_result(page, query), slug)
            first = sum(f"runbooks/{slug}/" in href for href, slug in ranks.values())
            missed = {query: href for query, (href, slug) in ranks.items() if f"runbooks/{slug}/" not in href}
            figures["search"] = {"first": first, "of": len(ranks), "missed": missed}
            browser.close()
    finally:
        server.shutdown()
    figures["axe"]["rules"] = {k: sorted(v) for k, v in figures["axe"].get("rules", {}).items()}
    return figures


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1], tuple(sys.argv[2:]) or ("tables", "search")), indent=1))
