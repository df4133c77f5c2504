"""The one-page print view of every runbook, assembled from the runbook pages' own HTML.

Converting every runbook's Markdown a second time, as one page, costs more than all
the runbook pages together (Python-Markdown and its extensions scan the whole page
per block). Instead, `PrintAssembly` keeps each runbook page's HTML as the build
produces it (`on_page_content`) and puts it, relocated, into the print page
(`on_post_page`): mkdocs converts every page before it renders the first one into
the theme, so every runbook is there by then.

Relocating a runbook's HTML into the print page (`relocate`):
- headings go one level down (the print page's own title is the only `h1`);
- ids and same-page links get the runbook's slug as a prefix, so that two runbooks'
  "Diagnosis" sections stay apart;
- a relative link or image is resolved from the runbook's URL and made relative to
  the print page's; a link to a runbook that the print page holds becomes a link
  within the print page.

It reads the attributes as Python-Markdown writes them (double quotes).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

_OPEN = '<section class="drillbook-print-runbook" id="'
_HEADING = re.compile(r"<(/?)h([1-5])\b")
# Attributes as Python-Markdown writes them: after a space, double-quoted. (A leading `\b`
# instead of the space makes each pattern ten times slower to scan a page.)
_ID = re.compile(r' id="([^"]*)"')
_LINK = re.compile(r' (href|src)="([^"]*)"')


def section_id(slug: str) -> str:
    """The print page's anchor of one runbook."""
    return f"runbook-{slug}"


# What `placeholder` writes, the slug captured.
_PLACEHOLDER = re.compile(re.escape(_OPEN + section_id("")) + r'([^"]+)"></section>')


def placeholder(slug: str) -> str:
    """What the `print_runbooks()` macro leaves in the print page for one runbook: an empty
    section, whose anchor the build's link check sees, that `PrintAssembly.fill` fills."""
    return f'{_OPEN}{section_id(slug)}"></section>'


def _folder(url: str) -> str:
    """The folder a page URL's relative links start from: `runbooks/x/` or `runbooks/`."""
    return url if url.endswith("/") else posixpath.dirname(url) + "/"


@lru_cache(maxsize=8192)
def _resolve(base_url: str, target: str) -> str:
    """`target` (relative) as a path from the site root, seen from the page at `base_url`."""
    joined = posixpath.normpath(posixpath.join(_folder(base_url).lstrip("/"), target))
    if target.endswith("/") and not joined.endswith("/"):
        joined += "/"
    return "" if joined == "." else joined


@lru_cache(maxsize=8192)
def _relative(from_url: str, path: str) -> str:
    """The site path `path` as a link from the page at `from_url`."""
    start = "/" + _folder(from_url).strip("/")
    link = posixpath.relpath("/" + path, start)  # both absolute: no look at the working directory
    if path.endswith("/") and not link.endswith("/"):
        link += "/"
    return link


def relocate(html: str, *, slug: str, from_url: str, to_url: str, sections: Mapping[str, str]) -> str:
    """A runbook page's HTML (at `from_url`) as a part of the print page (at `to_url`).

    `sections` maps the URL of each runbook in the print page to its slug.
    """
    prefix = f"{slug}--"

    def link(match: re.Match[str]) -> str:
        attribute, target = match[1], match[2]
        if target.startswith("#"):
            return f' {attribute}="#{prefix}{target[1:]}"'
        parts = urlsplit(target)
        if parts.scheme or parts.netloc or target.startswith("/") or not target:
            return match[0]
        path = _resolve(from_url, parts.path) if parts.path else from_url.lstrip("/")
        other = sections.get(path)
        if attribute == "href" and other is not None:
            anchor = f"{other}--{parts.fragment}" if parts.fragment else section_id(other)
            return f' href="#{anchor}"'
        moved = _relative(to_url, path)
        if parts.query:
            moved += f"?{parts.query}"
        if parts.fragment:
            moved += f"#{parts.fragment}"
        return f' {attribute}="{moved}"'

    html = _HEADING.sub(lambda m: f"<{m[1]}h{int(m[2]) + 1}", html)
    html = _ID.sub(lambda m: f' id="{prefix}{m[1]}"', html)
    return _LINK.sub(link, html)


@dataclass
class PrintAssembly:
    """Runbook pages' HTML, kept as the build converts them, for the print page."""

    runbooks_folder: str = "runbooks/"
    pages: dict[str, tuple[str, str]] = field(default_factory=dict)  # slug -> (url, html)

    def reset(self) -> None:
        self.pages.clear()

    def keep(self, src_uri: str, url: str, html: str) -> None:
        """Keep a page's HTML when it is a runbook (`runbooks/<slug>.md`, not the index)."""
        folder, _, name = src_uri.rpartition("/")
        if folder + "/" != self.runbooks_folder or not name.endswith(".md") or name == "index.md":
            return
        self.pages[name.removesuffix(".md")] = (url, html)

    def fill(self, output: str, url: str) -> str:
        """The print page's `output` with every kept runbook in its placeholder (one pass).

        Called for every page of the site: any other page goes back as it came."""
        if _OPEN not in output:
            return output
        sections = {page_url: slug for slug, (page_url, _) in self.pages.items()}

        def filled(match: re.Match[str]) -> str:
            slug = match[1]
            if slug not in self.pages:
                return match[0]
            page_url, html = self.pages[slug]
            body = relocate(html, slug=slug, from_url=page_url, to_url=url, sections=sections)
            return f'{_OPEN}{section_id(slug)}">\n{body}\n</section>'

        return _PLACEHOLDER.sub(filled, output)
