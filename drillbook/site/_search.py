"""Material's search index, with the pages indexed by a second process.

Material's search plugin parses every page's HTML with Python's `html.parser`, on
the same core that converts the next page's Markdown: about a sixth of the build.
`BackgroundSearchIndex` hands each page (its HTML, table of contents, URL and front
matter; never the page object) to one worker process, which runs Material's own
indexing on it, and collects the entries in page order when the index is written.
The index is the one Material would write, entry for entry, but for one field: the first
entry of a runbook page also has `keywords` (its title, symptoms, alerts, services and
faults from the front matter), a field mkdocs.yml's `search.fields` weighs above the text,
so that a runbook comes first for the symptoms and alerts it lists.

With a single usable core, or where processes cannot be forked, pages are indexed
in the build's own process, as Material does.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from material.plugins.search.plugin import SearchIndex


@dataclass(frozen=True)
class IndexedPage:
    """What Material's indexing reads of a page, and nothing that cannot cross a process."""

    content: str
    toc: Any
    url: str
    title: str
    meta: dict[str, Any]

    @classmethod
    def of(cls, page: Any) -> IndexedPage:
        if isinstance(page, IndexedPage):
            return page
        meta = {key: page.meta[key] for key in ("search", "tags", "title") if key in page.meta}
        words = runbook_keywords(page.meta) if str(page.url).startswith("runbooks/") else ""
        if words:
            meta[KEYWORDS] = words
        return cls(page.content or "", page.toc, page.url, str(page.title), meta)


KEYWORDS = "keywords"
"""The search field that holds a runbook's symptoms and alerts (weighed in mkdocs.yml)."""

_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def runbook_keywords(meta: Any) -> str:
    """A runbook's front matter as search words: title, symptoms, services, alert names (also as
    words: `PostgresConnectionsHigh` → `Postgres Connections High`) and fault names."""
    if not isinstance(meta, dict) or "alerts" not in meta:
        return ""
    words: list[str] = [str(meta.get("title", ""))]
    for key in ("symptoms", "services", "alerts", "faults"):
        value = meta.get(key) or []
        words.extend(str(item) for item in value if isinstance(value, list))
    words.extend(_WORD_BREAK.sub(" ", str(alert)) for alert in meta.get("alerts") or [])
    words.extend(str(fault).replace("-", " ") for fault in meta.get("faults") or [])
    return " ".join(" ".join(words).split())


class RunbookSearchIndex(SearchIndex):  # type: ignore[misc]
    """Material's index, with a runbook's keywords on the first entry of its page."""

    def create_entry_for_section(self, section: Any, toc: Any, url: str, page: Any) -> None:
        before = len(self.entries)
        super().create_entry_for_section(section, toc, url, page)
        words = page.meta.get(KEYWORDS) if isinstance(page.meta, dict) else None
        if words and len(self.entries) > before and "#" not in self.entries[-1]["location"]:
            self.entries[-1][KEYWORDS] = words


def _index_page(config: dict[str, Any], page: IndexedPage) -> list[dict[str, Any]]:
    """In the worker: Material's entries for one page."""
    index = RunbookSearchIndex(**config)
    index.add_entry_from_context(page)
    entries: list[dict[str, Any]] = index.entries
    return entries


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BackgroundSearchIndex(RunbookSearchIndex):
    """A drop-in for Material's `SearchIndex` that indexes pages in a worker process."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._pending: list[Future[list[dict[str, Any]]]] = []
        self._pool: ProcessPoolExecutor | None = None
        if usable_cores() > 1 and "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))

    def add_entry_from_context(self, page: Any) -> None:
        if self._pool is None:
            super().add_entry_from_context(IndexedPage.of(page))
            return
        self._pending.append(self._pool.submit(_index_page, self.config, IndexedPage.of(page)))

    def _collect(self) -> None:
        """The worker's entries, in the order the pages were built."""
        for future in self._pending:
            self.entries.extend(future.result())
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def generate_search_index(self, prev: Any) -> str:
        try:
            self._collect()
        except BrokenProcessPool as exc:
            raise RuntimeError(f"the search indexing process died: {exc}; build again") from exc
        data: str = super().generate_search_index(prev)
        return data
