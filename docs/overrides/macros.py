"""mkdocs-macros module (`plugins.macros.module_name` in mkdocs.yml): the macros live in drillbook.site."""

from drillbook.site import define_env

__all__ = ["define_env"]
