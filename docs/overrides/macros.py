"""mkdocs-macros module (`plugins.macros.module_name` in mkdocs.yml): the macros live in drillbook.site."""

from drillbook.site import define_env, on_post_build, on_post_page_macros, on_pre_page_macros

__all__ = ["define_env", "on_post_build", "on_post_page_macros", "on_pre_page_macros"]
