"""drillbook's site as a MkDocs plugin: `plugins: [..., drillbook]` in mkdocs.yml, installed with
the package (entry point `mkdocs.plugins`). No file to copy into a project.

It does what the site needs around the pages: the runbook summary under each runbook's title,
the print page assembled from the runbook pages' HTML, and the search index built in a second
process. The page macros (`runbook_steps`, `severity_matrix`, ...) are mkdocs-macros'
`modules: [drillbook.site]`.
"""

from __future__ import annotations

from typing import Any

from mkdocs.plugins import BasePlugin, event_priority

from drillbook import site

__all__ = ["DrillbookPlugin"]


class DrillbookPlugin(BasePlugin):  # type: ignore[type-arg,no-untyped-call]
    """Delegates each MkDocs event to drillbook.site, where the site's logic lives."""

    @event_priority(-100)  # after Material's search plugin has made its index
    def on_config(self, config: Any) -> None:
        site.on_config(config)

    def on_pre_build(self, config: Any) -> None:
        site.on_pre_build(config)

    def on_page_markdown(self, markdown: str, page: Any, config: Any, files: Any) -> str:
        return site.on_page_markdown(markdown, page, config, files)

    def on_page_content(self, html: str, page: Any, config: Any, files: Any) -> str:
        return site.on_page_content(html, page, config, files)

    def on_post_page(self, output: str, page: Any, config: Any) -> str:
        return site.on_post_page(output, page, config)
