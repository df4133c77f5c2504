"""The print page: every runbook's own HTML, relocated into one page."""

from __future__ import annotations

from drillbook.site import relocate
from drillbook.site._print import PrintAssembly, placeholder

SECTIONS = {"runbooks/service-down/": "service-down", "runbooks/database-down/": "database-down"}
PAGE = (
    '<h1 id="service-down">Service down</h1>\n'
    '<h2 id="diagnosis">Diagnosis<a class="headerlink" href="#diagnosis">¶</a></h2>\n'
    '<p>See <a href="../database-down/#restart">the database</a>, the <a href="../">catalogue</a>,\n'
    '<a href="../../severity/#sev1">SEV1</a>, <a href="https://example.org/x">a vendor</a>\n'
    'and <img alt="graph" src="../../assets/graph.png"></p>'
)


def relocated(to_url: str = "print/", from_url: str = "runbooks/service-down/") -> str:
    return relocate(PAGE, slug="service-down", from_url=from_url, to_url=to_url, sections=SECTIONS)


def test_headings_go_one_level_down_and_ids_carry_the_runbook() -> None:
    html = relocated()
    assert '<h2 id="service-down--service-down">Service down</h2>' in html
    assert '<h3 id="service-down--diagnosis">Diagnosis' in html
    assert '<a class="headerlink" href="#service-down--diagnosis">' in html
    assert "<h1" not in html


def test_links_to_runbooks_in_the_print_stay_in_the_print_and_others_move_with_the_page() -> None:
    html = relocated()
    assert 'href="#database-down--restart"' in html  # another runbook of the print page
    assert 'href="../runbooks/"' in html  # the catalogue, seen from print/
    assert 'href="../severity/#sev1"' in html
    assert 'href="https://example.org/x"' in html  # absolute: untouched
    assert 'src="../assets/graph.png"' in html


def test_links_work_without_directory_urls_too() -> None:
    page = (
        '<a href="database-down.html#restart">db</a> <a href="index.html">catalogue</a> '
        '<a href="../severity.html#sev1">SEV1</a> <img alt="graph" src="../assets/graph.png">'
    )
    sections = {"runbooks/service-down.html": "service-down", "runbooks/database-down.html": "database-down"}
    source = "runbooks/service-down.html"
    html = relocate(page, slug="service-down", from_url=source, to_url="print.html", sections=sections)
    assert 'href="#database-down--restart"' in html
    assert 'href="runbooks/index.html"' in html
    assert 'href="severity.html#sev1"' in html
    assert 'src="assets/graph.png"' in html


def test_the_print_page_gets_each_kept_runbook_in_its_place_and_nothing_else_changes() -> None:
    assembly = PrintAssembly()
    assembly.keep("runbooks/service-down.md", "runbooks/service-down/", PAGE)
    assembly.keep("runbooks/index.md", "runbooks/", "<h1>every runbook, listed</h1>")
    assembly.keep("severity.md", "severity/", "<h1>severity</h1>")
    output = f"<nav>menu</nav>{placeholder('service-down')}<hr>{placeholder('gone')}"
    filled = assembly.fill(output, "print/")
    assert filled.startswith("<nav>menu</nav>")
    assert '<section class="drillbook-print-runbook" id="runbook-service-down">' in filled
    assert '<h2 id="service-down--service-down">' in filled
    assert placeholder("gone") in filled  # nothing kept for it: left as it was
    assert "every runbook, listed" not in filled
    assert "severity</h" not in filled
    assembly.reset()
    assert assembly.fill(output, "print/") == output
