"""Material's search index, with the pages indexed by a second process.

Material's search plugin parses every page's HTML with Python's `html.parser`, on
the same core that converts the next page's Markdown: about a sixth of the build.
`BackgroundSearchIndex` hands each page (its HTML, table of contents, URL and front
matter; never the page object) to one worker process, which runs Material's own
indexing on it, and collects the entries in page order when the index is written.
The index is the one Material would write, entry for entry.

With a single usable core, or where processes cannot be forked, pages are indexed
in the build's own process, as Material does.
"""

from __future__ import annotations

import multiprocessing
import os
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
        meta = {key: page.meta[key] for key in ("search", "tags", "title") if key in page.meta}
        return cls(page.content or "", page.toc, page.url, str(page.title), meta)


def _index_page(config: dict[str, Any], page: IndexedPage) -> list[dict[str, Any]]:
    """In the worker: Material's entries for one page."""
    index = SearchIndex(**config)
    index.add_entry_from_context(page)
    entries: list[dict[str, Any]] = index.entries
    return entries


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class BackgroundSearchIndex(SearchIndex):  # type: ignore[misc]
    """A drop-in for Material's `SearchIndex` that indexes pages in a worker process."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self._pending: list[Future[list[dict[str, Any]]]] = []
        self._pool: ProcessPoolExecutor | None = None
        if usable_cores() > 1 and "fork" in multiprocessing.get_all_start_methods():
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))

    def add_entry_from_context(self, page: Any) -> None:
        if self._pool is None:
            super().add_entry_from_context(page)
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
