"""Every runbook as one PDF, with page numbers in its contents: `python -m drillbook.site.pdf SITE OUT`.

SITE is a site built for file:// (`DRILLBOOK_OFFLINE=true mkdocs build`); its print page lists
the severity matrix, the escalation ladders and every runbook, most severe first, each section
on a new page, and numbers every page at its foot (print styles, drillbook.css). Chromium knows
on which page each section starts only once it has laid the document out, so the PDF is
printed twice:

1. Chromium prints the page; the PDF's named destinations (Chromium writes one per element id,
   as `/<id> [<page object> 0 R ...]`) say on which page each section starts;
2. Chromium prints it again with those numbers in the URL (`?pages=id:3,id:7`), which the
   page's script writes into its contents. The contents keep the same size either way, so
   the numbers hold; the second PDF is read again to prove it.

Chromium is Debian's (`chromium`, or `$DRILLBOOK_CHROMIUM`), run as an argv list with a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

CHROMIUM_VARIABLE = "DRILLBOOK_CHROMIUM"
PRINT_PAGE = "print.html"
SECTION_PREFIX = ("runbook-", "print-")
"""The ids of the print page's sections, whose pages the contents give."""

PRINT_TIMEOUT_S = 120
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
)
"""Chromium without a screen, asking nothing of the network: what printing and the browser tests share."""
_FLAGS = (
    *HEADLESS_FLAGS,
    "--no-pdf-header-footer",
    "--virtual-time-budget=5000",
)

_OBJECT = re.compile(rb"(?m)^(\d+) 0 obj\s*<<(.*?)>>\s*endobj", re.DOTALL)
_REF = re.compile(rb"(\d+) 0 R")
_DEST = re.compile(rb"/([A-Za-z0-9_.:#-]+) \[(\d+) 0 R /XYZ")


class PdfError(Exception):
    """The PDF could not be printed or read; the message says what to do."""


def _objects(pdf: bytes) -> dict[int, bytes]:
    return {int(number): body for number, body in _OBJECT.findall(pdf)}


def page_order(pdf: bytes) -> list[int]:
    """The page objects of a PDF in reading order (the /Pages tree, walked depth first)."""
    objects = _objects(pdf)
    catalog = next((body for body in objects.values() if b"/Type /Catalog" in body), None)
    root = re.search(rb"/Pages (\d+) 0 R", catalog or b"")
    if root is None:
        raise PdfError("the PDF has no page tree that this reader understands")
    pages: list[int] = []

    def walk(number: int) -> None:
        body = objects.get(number, b"")
        kids = re.search(rb"/Kids \[([^\]]*)\]", body)
        if b"/Type /Pages" in body and kids:
            for kid in _REF.findall(kids[1]):
                walk(int(kid))
        else:
            pages.append(number)

    walk(int(root[1]))
    return pages


def destinations(pdf: bytes) -> dict[str, int]:
    """The page number (from 1) of every named destination of a PDF, by name."""
    order = {number: index for index, number in enumerate(page_order(pdf), start=1)}
    found: dict[str, int] = {}
    for name, page in _DEST.findall(pdf):
        if int(page) in order:
            found.setdefault(name.decode(), order[int(page)])
    return found


def section_pages(pdf: bytes) -> dict[str, int]:
    """The first page of each section of the print page."""
    return {name: page for name, page in destinations(pdf).items() if name.startswith(SECTION_PREFIX)}


def page_count(pdf: bytes) -> int:
    return len(page_order(pdf))


def chromium() -> str:
    found = os.environ.get(CHROMIUM_VARIABLE) or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        raise PdfError("no chromium to print with: apt-get install -y chromium, or set $DRILLBOOK_CHROMIUM")
    return found


def print_pdf(url: str, target: Path, *, browser: str | None = None) -> bytes:
    """Chromium's PDF of `url`, written to `target` and returned."""
    argv = [browser or chromium(), *_FLAGS, f"--print-to-pdf={target}", url]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=PRINT_TIMEOUT_S)
    except subprocess.CalledProcessError as exc:
        raise PdfError(
            f"chromium could not print {url}: {exc.stderr.decode(errors='replace')[-800:]}"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise PdfError(f"chromium did not print {url} within {PRINT_TIMEOUT_S} s") from exc
    if not target.is_file():
        raise PdfError(f"chromium wrote no PDF for {url}")
    return target.read_bytes()


def pages_query(pages: Mapping[str, int]) -> str:
    return "pages=" + quote(",".join(f"{name}:{page}" for name, page in sorted(pages.items())), safe=",:")


def make_pdf(site: Path, out: Path, *, browser: str | None = None, passes: int = 3) -> dict[str, int]:
    """The print page of `site` as a PDF at `out`, its contents numbered; returns the section pages."""
    page = site / PRINT_PAGE
    if not page.is_file():
        raise PdfError(f"{page} is missing: build the site first (make offline)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="drillbook-pdf-") as scratch:
        draft = Path(scratch) / "draft.pdf"
        pages = section_pages(print_pdf(page.as_uri(), draft, browser=browser))
        if not pages:
            raise PdfError(
                f"{page}: the PDF names no section (ids starting with {', '.join(SECTION_PREFIX)})"
            )
        for _ in range(passes):
            final = section_pages(print_pdf(f"{page.as_uri()}?{pages_query(pages)}", out, browser=browser))
            if final == pages:
                return pages
            pages = final
    raise PdfError(f"the contents' page numbers did not settle after {passes} passes: {pages}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m drillbook.site.pdf SITE_DIR OUT.pdf", file=sys.stderr)
        return 2
    try:
        pages = make_pdf(Path(args[0]), Path(args[1]))
    except PdfError as exc:
        print(f"drillbook.site.pdf: {exc}", file=sys.stderr)
        return 1
    print(f"{args[1]}: {len(pages)} sections, the last from page {max(pages.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
