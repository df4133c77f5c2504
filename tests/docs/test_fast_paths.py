"""The build's two shortcuts give what the slow path gives.

- Plain macro calls are expanded without Jinja; anything else on a page is left to
  mkdocs-macros (drillbook/site/_expand.py).
- The search index is built in a second process, entry for entry as Material builds
  it (drillbook/site/_search.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import markdown
import pytest
from material.plugins.search.plugin import SearchIndex
from mkdocs.structure.toc import get_toc

from drillbook.site._expand import expand_calls, protect_alert_templates
from drillbook.site._search import KEYWORDS, BackgroundSearchIndex, IndexedPage
from tests.docs.test_site import REPO, built, copy_project, mkdocs_build

# --------------------------------------------------------------------------- macro calls

BADGE = re.compile(r"Not verified in this build|Verified against|The last run against")


@pytest.fixture
def calls() -> list[tuple[str, tuple[Any, ...], dict[str, Any]]]:
    return []


@pytest.fixture
def macros(calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> dict[str, Callable[..., Any]]:
    def recorder(name: str) -> Callable[..., str]:
        def macro(*args: Any, **kwargs: Any) -> str:
            calls.append((name, args, kwargs))
            return f"<{name}:{args!r}:{kwargs!r}>"

        return macro

    return {name: recorder(name) for name in ("steps", "target")}


def test_literal_calls_are_replaced_by_what_the_macros_return(
    macros: dict[str, Callable[..., Any]], calls: list[Any]
) -> None:
    call = "{{steps(\"x\", tag='diagnosis', n=-2, on=true, off=none)}}"
    text = f'A {{{{ target("SEV1", "label") }}}} page.\n\n{call}\n'
    assert expand_calls(text, macros) == (
        "A <target:('SEV1', 'label'):{}> page.\n\n"
        "<steps:('x',):{'tag': 'diagnosis', 'n': -2, 'on': True, 'off': None}>\n"
    )
    assert [name for name, _, _ in calls] == ["target", "steps"]


def test_a_page_without_expressions_comes_back_unchanged(macros: dict[str, Callable[..., Any]]) -> None:
    assert expand_calls("# Title\n\nNo macros here.\n", macros) == "# Title\n\nNo macros here.\n"


@pytest.mark.parametrize(
    "text",
    [
        '{% if true %}{{ steps("x") }}{% endif %}',  # a statement
        '{# a comment #} {{ steps("x") }}',  # a comment
        "{{ page.title }}",  # a variable
        '{{ steps("x") | upper }}',  # a filter
        "{{ steps(slug) }}",  # an argument that is a variable
        '{{ steps("x" ~ "y") }}',  # an expression as argument
        '{{ unknown("x") }}',  # a macro that does not exist
        '{{- steps("x") }}',  # whitespace control
        '{{ steps(**{"a": 1}) }}',  # unpacking
    ],
)
def test_anything_but_plain_calls_is_left_to_jinja_with_no_macro_called(
    text: str, macros: dict[str, Callable[..., Any]], calls: list[Any]
) -> None:
    assert expand_calls(f'{{{{ target("SEV1", "label") }}}}\n{text}\n', macros) is None
    assert calls == [], "no macro may run for a page that Jinja renders afterwards"


@pytest.mark.parametrize(
    "template",
    [
        "{{ $labels.instance }}",
        "{{ $value | humanizePercentage }}",
        "{{- .Labels.job -}}",
        '{{ range $i, $v := query "up" }}',
        "{{ end }}",
        "{{ humanize 3.5 }}",
    ],
)
def test_an_alert_template_passes_the_fast_path_as_written(
    template: str, macros: dict[str, Callable[..., Any]], calls: list[Any]
) -> None:
    text = f'{{{{ target("SEV1", "label") }}}}: `{template}`\n'
    assert expand_calls(text, macros) == f"<target:('SEV1', 'label'):{{}}>: `{template}`\n"
    assert protect_alert_templates(template) == "{% raw %}" + template + "{% endraw %}"


@pytest.mark.parametrize("expression", ['{{ steps("x") }}', "{{ title }}", "{{ page.title }}"])
def test_a_jinja_expression_is_never_taken_for_an_alert_template(expression: str) -> None:
    assert protect_alert_templates(expression) == expression


ALERT_TEMPLATES = (
    "Paged by {{ $labels.instance }} at {{ $value | humanizePercentage }}; "
    "in code: `{{ $labels.job }}`.\n\n"
    '```yaml\ndescription: "{{ $labels.instance }} is down {{ if gt $value 1.0 }}again{{ end }}"\n```\n'
)


@pytest.fixture(scope="module")
def site_quoting_alert_templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Alert templates quoted on a page of the fast path (database-down) and on a page that
    Jinja renders (service-down, with a statement)."""
    project = copy_project(tmp_path_factory.mktemp("project-templates"))
    for slug, extra in (
        ("database-down", ""),
        ("service-down", "{% if true %}JINJA-RENDERED{% endif %}\n\n"),
    ):
        page = project / "docs" / "runbooks" / f"{slug}.md"
        text = page.read_text(encoding="utf-8")
        page.write_text(text.replace("## Impact\n", f"## Impact\n\n{extra}{ALERT_TEMPLATES}", 1))
    site_dir = tmp_path_factory.mktemp("site-templates")
    return built(mkdocs_build(project, site_dir), site_dir)


@pytest.mark.parametrize("slug", ["database-down", "service-down"])
def test_alert_templates_on_a_runbook_page_render_as_written(
    site_quoting_alert_templates: Path, slug: str
) -> None:
    html = (site_quoting_alert_templates / "runbooks" / slug / "index.html").read_text(encoding="utf-8")
    for template in ("{{ $labels.instance }}", "{{ $value | humanizePercentage }}", "{{ $labels.job }}",
                     "{{ if gt $value 1.0 }}", "{{ end }}"):  # fmt: skip
        assert template in html, f"{slug}: {template} is not on the page as written"
    assert "{% raw %}" not in html
    assert len(BADGE.findall(html)) == 1


@pytest.fixture(scope="module")
def site_with_a_jinja_statement(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site with one runbook page that needs Jinja (a statement), so mkdocs-macros renders it."""
    project = copy_project(tmp_path_factory.mktemp("project-jinja"))
    page = project / "docs" / "runbooks" / "service-down.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("## Impact\n", "## Impact\n\n{% if true %}JINJA-RENDERED{% endif %}\n", 1))
    site_dir = tmp_path_factory.mktemp("site-jinja")
    return built(mkdocs_build(project, site_dir), site_dir)


def test_a_page_that_needs_jinja_is_rendered_by_mkdocs_macros(site_with_a_jinja_statement: Path) -> None:
    html = (site_with_a_jinja_statement / "runbooks" / "service-down" / "index.html").read_text()
    assert "JINJA-RENDERED" in html
    assert "{%" not in html
    assert "{{" not in html
    assert len(BADGE.findall(html)) == 1, "runbook_steps puts its badge on the page once"
    other = (site_with_a_jinja_statement / "runbooks" / "database-down" / "index.html").read_text()
    assert len(BADGE.findall(other)) == 1
    assert "{{" not in other


# --------------------------------------------------------------------------- search index


def _page(source: str, url: str, meta: dict[str, Any]) -> IndexedPage:
    converter = markdown.Markdown(extensions=["toc", "tables", "fenced_code"], extension_configs={})
    content = converter.convert(source)
    toc = get_toc(getattr(converter, "toc_tokens", []))
    return IndexedPage(content, toc, url, str(meta.get("title", url)), meta)


RUNBOOK = Path(REPO / "docs" / "runbooks" / "service-down.md").read_text(encoding="utf-8").split("---", 2)[2]


def test_the_background_index_is_materials_index_entry_for_entry() -> None:
    pages = [
        _page(RUNBOOK, "runbooks/service-down/", {"title": "Service down", "tags": ["availability"]}),
        _page("# Alerts\n\n| a | b |\n| - | - |\n| 1 | 2 |\n", "alerts/", {}),
        _page(
            "Text before any heading.\n\n## Late\n\n```\ncode <b>\n```\n", "late/", {"search": {"boost": 2}}
        ),
        _page("# Hidden\n", "hidden/", {"search": {"exclude": True}}),
    ]
    config = {"lang": ["en"], "separator": r"[\s\-]+", "pipeline": ["stemmer"], "fields": {}}
    material, ours = SearchIndex(**config), BackgroundSearchIndex(**config)
    for page in pages:
        material.add_entry_from_context(page)
        ours.add_entry_from_context(page)
    expected, got = material.generate_search_index(None), ours.generate_search_index(None)
    assert got == expected
    locations = [entry["location"] for entry in json.loads(got)["docs"]]
    assert "runbooks/service-down/#diagnosis" in locations
    assert not any(location.startswith("hidden/") for location in locations)


def test_a_runbook_page_is_found_by_its_front_matter_keywords() -> None:
    """The first entry of a runbook page holds its symptoms and alerts (as words too); no other does."""
    meta = {
        "title": "Database connections",
        "alerts": ["PostgresConnectionsHigh"],
        "symptoms": ["remaining connection slots are reserved"],
        "services": ["postgres"],
        "faults": ["db-pool-exhausted"],
    }
    content = '<h1>Database connections</h1><h2 id="impact">Impact</h2><p>x</p>'
    url, title = "runbooks/database-connections/", "Database connections"
    runbook = SimpleNamespace(content=content, toc=get_toc([]), url=url, title=title, meta=meta)
    other = SimpleNamespace(
        content="<h1>Templates</h1>",
        toc=get_toc([]),
        url="templates/",
        title="Templates",
        meta={"alerts": ["X"]},
    )
    config = {"lang": ["en"], "separator": r"[\s\-]+", "pipeline": [], "fields": {}}
    index = BackgroundSearchIndex(**config)
    index.add_entry_from_context(runbook)
    index.add_entry_from_context(other)
    docs = json.loads(index.generate_search_index(None))["docs"]
    first, section, templates = docs
    assert "remaining connection slots are reserved" in first[KEYWORDS]
    assert "Postgres Connections High" in first[KEYWORDS]
    assert "db pool exhausted" in first[KEYWORDS]
    assert KEYWORDS not in section
    assert KEYWORDS not in templates
