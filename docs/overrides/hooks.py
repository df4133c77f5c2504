"""mkdocs hooks (`hooks:` in mkdocs.yml): the runbook summary, the print page, assembled from the
runbook pages' HTML, and the search index, built in a second process."""

from drillbook.site import on_config, on_page_content, on_page_markdown, on_post_page, on_pre_build

__all__ = ["on_config", "on_page_content", "on_page_markdown", "on_post_page", "on_pre_build"]
