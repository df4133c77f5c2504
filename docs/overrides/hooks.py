"""mkdocs hooks (`hooks:` in mkdocs.yml): the print page is assembled from the runbook pages' HTML."""

from drillbook.site import on_page_content, on_post_page, on_pre_build

__all__ = ["on_page_content", "on_post_page", "on_pre_build"]
