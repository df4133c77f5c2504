"""The documentation site: real `mkdocs build --strict` runs, plus the macros' renderers on their own.

Each build scenario runs once per module (a build takes seconds): the site as it
is, the site built against a modified copy of the policy, and a copy of the
project whose runbook asks for a notebook tag that does not exist.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from checks import Targets, format_duration, load_severity, postgres, prometheus
from checks.by_hand import manuals, shell
from drillbook.site import (
    BY_HAND_TITLE,
    OUTPUT_TITLE,
    PLACEHOLDER,
    AlertRule,
    DrillResult,
    SiteError,
    Verification,
    link_alerts,
    read_drills,
    read_placeholders,
    read_runbook_pages,
    render_badge,
    render_runbook_catalogue,
    render_runbook_steps,
)

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 180
DIAGNOSIS_CALL = 'runbook_steps("service-down", "diagnosis")'


# --------------------------------------------------------------------------- helpers


def mkdocs_build(
    project: Path, site_dir: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of `project`'s mkdocs.yml into `site_dir`, with this checkout importable."""
    env = {k: v for k, v in os.environ.items() if k != "DRILLBOOK_POLICY_DIR"}
    env["NO_MKDOCS_2_WARNING"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    argv = [
        sys.executable, "-m", "mkdocs", "build", "--strict",
        "--config-file", str(project / "mkdocs.yml"), "--site-dir", str(site_dir),
    ]  # fmt: skip
    return subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)


def built(result: subprocess.CompletedProcess[str], site_dir: Path) -> Path:
    assert result.returncode == 0, f"mkdocs build failed:\n{result.stdout}\n{result.stderr}"
    return site_dir


def copy_project(destination: Path, *, rules: str | None = None) -> Path:
    """The parts of the checkout that a build reads, copied so that a test may change them.

    `rules` becomes the copy's sandbox/config/rules/alerts.yml; without it the copy's
    `[tool.drillbook]` names no rule file.
    """
    for name in ("docs", "notebooks", "policy"):
        shutil.copytree(REPO / name, destination / name, ignore=shutil.ignore_patterns("node_modules"))
    shutil.copy2(REPO / "mkdocs.yml", destination / "mkdocs.yml")
    named = '["sandbox/config/rules/alerts.yml"]' if rules is not None else "[]"
    (destination / "pyproject.toml").write_text(
        f"[tool.drillbook]\nalert_rules = {named}\n", encoding="utf-8"
    )
    if rules is not None:
        target = destination / "sandbox" / "config" / "rules" / "alerts.yml"
        target.parent.mkdir(parents=True)
        target.write_text(rules, encoding="utf-8")
    return destination


class _Html(HTMLParser):
    """Collects table rows (cell texts), the text inside <code>, and <link>/<script> URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.code: list[str] = []
        self.resources: list[str] = []
        self._cell: list[str] | None = None
        self._code_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "code":
            self._code_depth += 1
            self.code.append("")
        elif tag == "link" and values.get("href") and values.get("rel") != "canonical":
            # a canonical link names the published address; the browser does not fetch it
            self.resources.append(values["href"] or "")
        elif tag == "script" and values.get("src"):
            self.resources.append(values["src"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "code":
            self._code_depth = max(0, self._code_depth - 1)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._code_depth:
            self.code[-1] += data


def parse(page: Path) -> _Html:
    parser = _Html()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def severity_row(site_dir: Path, level: str) -> dict[str, str]:
    """The severity matrix row of `level`, as header → cell text."""
    rows = parse(site_dir / "severity" / "index.html").rows
    header = rows[0]
    for row in rows[1:]:
        if row and row[0].split()[0] == level:
            return dict(zip(header, row, strict=True))
    raise AssertionError(f"no row for {level} in the severity matrix: {rows}")


def tagged_code(notebook: Path, tag: str) -> list[str]:
    """The code (without its leading comment lines) of every cell tagged `tag`."""
    cells = [c for c in jupytext.read(notebook).cells if tag in c.metadata.get("tags", ())]
    codes = []
    for cell in cells:
        lines = cell.source.splitlines()
        while lines and (lines[0].startswith("#") or not lines[0].strip()):
            lines.pop(0)
        codes.append("\n".join(lines))
    return codes


# --------------------------------------------------------------------------- builds (once each)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site_dir = tmp_path_factory.mktemp("site")
    return built(mkdocs_build(REPO, site_dir), site_dir)


@pytest.fixture(scope="module")
def site_with_faster_sev1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built against a copy of the policy where SEV1 must be acknowledged in 10m and the
    incident report is due within 36h of the resolution."""
    policy = tmp_path_factory.mktemp("policy")
    shutil.copytree(REPO / "policy", policy, dirs_exist_ok=True)
    severity_file = policy / "severity.yml"
    data = yaml.safe_load(severity_file.read_text(encoding="utf-8"))
    (sev1,) = (level for level in data["levels"] if level["id"] == "SEV1")
    assert sev1["acknowledge_within"] == "15m", "the test assumes the shipped policy's 15m"
    sev1["acknowledge_within"] = "10m"
    assert data["after_the_incident"]["report_within"] == "48h", "the test assumes the shipped 48h"
    data["after_the_incident"]["report_within"] = "36h"
    severity_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    site_dir = tmp_path_factory.mktemp("site-policy")
    result = mkdocs_build(REPO, site_dir, {"DRILLBOOK_POLICY_DIR": str(policy)})
    return built(result, site_dir)


@pytest.fixture(scope="module")
def build_with_unknown_tag(
    tmp_path_factory: pytest.TempPathFactory,
) -> subprocess.CompletedProcess[str]:
    project = copy_project(tmp_path_factory.mktemp("project"))
    page = project / "docs" / "runbooks" / "service-down.md"
    text = page.read_text(encoding="utf-8")
    assert DIAGNOSIS_CALL in text
    page.write_text(
        text.replace(DIAGNOSIS_CALL, 'runbook_steps("service-down", "no-such-tag")'),
        encoding="utf-8",
    )
    return mkdocs_build(project, tmp_path_factory.mktemp("site-broken"))


# --------------------------------------------------------------------------- (a) strict build


def test_strict_build_renders_the_diagnosis_cells_of_the_notebook(site: Path) -> None:
    page = parse(site / "runbooks" / "service-down" / "index.html")
    rendered = "\n".join(page.code)
    codes = tagged_code(REPO / "notebooks" / "service-down.py", "diagnosis")
    assert codes, "the service-down notebook has no diagnosis cell"
    for code in codes:
        for line in filter(str.strip, code.splitlines()):
            assert line in rendered, f"diagnosis line {line!r} is missing from the page"


def test_catalogue_links_every_runbook_page(site: Path) -> None:
    html = (site / "runbooks" / "index.html").read_text(encoding="utf-8")
    for page in (REPO / "docs" / "runbooks").glob("*.md"):
        if page.name != "index.md":
            assert f'href="{page.stem}/"' in html


# --------------------------------------------------------------------------- (b) policy drives the site


def test_follow_up_deadlines_on_the_process_pages_follow_the_policy_file(
    site: Path, site_with_faster_sev1: Path
) -> None:
    for page in ("process", "post-mortem", "templates"):
        shipped = " ".join((site / page / "index.html").read_text(encoding="utf-8").split())
        changed = " ".join((site_with_faster_sev1 / page / "index.html").read_text(encoding="utf-8").split())
        assert "within 48 hours" in shipped, page
        assert "within 36 hours" in changed, page
        assert "48 hours" not in changed, page


def test_the_severity_page_notes_every_choice_the_policy_made_and_the_value_not_taken(site: Path) -> None:
    from checks import load_severity

    page = (site / "severity" / "index.html").read_text(encoding="utf-8")
    decisions = load_severity().decisions
    assert decisions
    for decision in decisions:
        assert html.escape(decision.chosen, quote=False) in page, decision.topic
        assert html.escape(decision.not_taken, quote=False) in page, decision.topic


def test_severity_matrix_follows_the_policy_file(site: Path, site_with_faster_sev1: Path) -> None:
    assert severity_row(site, "SEV1")["Acknowledge within"] == "15m"
    assert severity_row(site_with_faster_sev1, "SEV1")["Acknowledge within"] == "10m"
    assert severity_row(site_with_faster_sev1, "SEV2") == severity_row(site, "SEV2")


# --------------------------------------------------------------------------- (c) offline


def test_built_site_loads_nothing_from_another_host(site: Path) -> None:
    external = []
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in html, page
        assert "fonts.gstatic" not in html, page
        for url in parse(page).resources:
            if url.startswith(("http://", "https://", "//")):
                external.append(f"{page.relative_to(site)}: {url}")
    assert not external, "external <link>/<script> URLs:\n" + "\n".join(external)


# --------------------------------------------------------------------------- (d) loud failures


def test_unknown_notebook_tag_fails_the_build_naming_the_tag(
    build_with_unknown_tag: subprocess.CompletedProcess[str],
) -> None:
    output = build_with_unknown_tag.stdout + build_with_unknown_tag.stderr
    assert build_with_unknown_tag.returncode != 0, output
    assert "no-such-tag" in output
    assert "diagnosis" in output, "the message should list the tags that exist"


# --------------------------------------------------------------------------- renderers, no build


NOTEBOOK = """\
# %% [markdown]
# # A runbook

# %% tags=["parameters"]
env = "sandbox"

# %% tags=["diagnosis"]
# Ask the service.
#
# A second paragraph with `code`.
health = probe(env)
health

# %% tags=["diagnosis"]
# Ask Prometheus.
up = scrape(env)
up

# %% tags=["mitigation"]
# Restart it.
restart(env)
"""


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    path = tmp_path / "runbook.py"
    path.write_text(NOTEBOOK, encoding="utf-8")
    return path


def write_executed(notebook: Path, path: Path, **run: str) -> Path:
    """An executed copy of `notebook`, as the runner leaves it: run metadata, an injected cell, outputs."""
    executed = jupytext.read(notebook)
    executed.metadata["drillbook"] = run
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = []
        if "probe" in cell.source:
            data = {"text/markdown": "**CRIT** connection refused", "text/plain": "Result(CRIT)"}
            cell.outputs.append(nbformat.v4.new_output("execute_result", data=data))
        elif "scrape" in cell.source:
            cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text="up = 0\n"))
            data = {"text/plain": "Result(WARN)"}
            cell.outputs.append(nbformat.v4.new_output("display_data", data=data))
    injected = nbformat.v4.new_code_cell('env = "ci"', metadata={"tags": ["injected-parameters"]})
    executed.cells.insert(2, injected)
    nbformat.write(executed, path)
    return path


def test_steps_turn_leading_comments_into_prose_and_code_into_blocks(notebook: Path) -> None:
    markdown = render_runbook_steps(notebook, None, "diagnosis")
    assert "Not verified in this build" in markdown
    assert "**Step 1.** Ask the service.\n\nA second paragraph with `code`." in markdown
    assert "```python\nhealth = probe(env)\nhealth\n```" in markdown
    assert "# Ask the service" not in markdown
    assert OUTPUT_TITLE not in markdown
    assert "Restart it" not in markdown


def test_steps_show_the_output_and_date_of_the_executed_notebook(notebook: Path, tmp_path: Path) -> None:
    executed = write_executed(
        notebook, tmp_path / "runbook.ipynb", executed_at="2026-11-22T00:30:00+01:00", status="ok"
    )
    markdown = render_runbook_steps(notebook, executed, "diagnosis")
    assert "Verified against the sandbox on 2026-11-21 23:30 UTC" in markdown
    assert markdown.count(f'??? info "{OUTPUT_TITLE}"') == 2
    assert "    **CRIT** connection refused" in markdown  # markdown preferred, inside the block
    assert "Result(CRIT)" not in markdown
    assert "up = 0" in markdown  # a stream, as text
    assert "Result(WARN)" in markdown  # text/plain when there is no text/markdown


def test_a_step_edited_since_the_verified_run_says_so(notebook: Path, tmp_path: Path) -> None:
    executed = write_executed(notebook, tmp_path / "runbook.ipynb")
    notebook.write_text(NOTEBOOK.replace("up = scrape(env)", "up = scrape(env, job='api')"), encoding="utf-8")
    markdown = render_runbook_steps(notebook, executed, "diagnosis")
    assert "the run did not record its date" in markdown
    assert markdown.count(OUTPUT_TITLE) == 1
    assert "changed after the last verified run" in markdown


def test_a_failed_run_is_not_called_verified(notebook: Path, tmp_path: Path) -> None:
    executed = write_executed(
        notebook, tmp_path / "runbook.ipynb", executed_at="2026-11-22T08:00:00+00:00", status="error"
    )
    markdown = render_runbook_steps(notebook, executed, "diagnosis")
    assert "Verified" not in markdown
    assert '!!! failure "The last run against the sandbox on 2026-11-22 08:00 UTC did not pass' in markdown


def test_a_tag_without_cells_raises_naming_the_notebook_and_the_tags(notebook: Path) -> None:
    with pytest.raises(SiteError, match="'verify'") as caught:
        render_runbook_steps(notebook, None, "verify")
    assert str(notebook) in str(caught.value)
    assert "diagnosis, mitigation, parameters" in str(caught.value)


def test_catalogue_flags_a_runbook_whose_review_is_overdue() -> None:
    pages = read_runbook_pages(REPO / "docs" / "runbooks")
    policy = load_severity(REPO / "policy" / "severity.yml")
    (page,) = (p for p in pages if p.slug == "service-down")
    due = page.review_due()
    assert due is not None
    on_time = render_runbook_catalogue(pages, policy, today=due)
    late = render_runbook_catalogue(pages, policy, today=date.fromordinal(due.toordinal() + 1))
    assert "overdue" not in on_time
    assert f"review overdue since {due.isoformat()}" in late
    assert "[Service down](service-down.md)" in on_time


# --------------------------------------------------------------------------- wave 2: the incident site

FIXTURE_RULES = (Path(__file__).parent / "fixtures" / "alerts.yml").read_text(encoding="utf-8")


def text_of(page: Path) -> str:
    """The visible text of a built page, roughly: tags stripped, entities decoded."""
    import html as html_module
    import re

    raw = page.read_text(encoding="utf-8")
    raw = re.sub(r"<script.*?</script>", " ", raw, flags=re.DOTALL)
    raw = raw.replace("<wbr>", "")  # a place a word may wrap, not a space
    return " ".join(html_module.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


@pytest.fixture(scope="module")
def project_with_rules(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """A copy of the project with the fixture rule file and drill results, built once."""
    project = copy_project(tmp_path_factory.mktemp("project-rules"), rules=FIXTURE_RULES)
    drills = project / "build" / "drills"
    drills.mkdir(parents=True)
    summary = {
        "service-down": {
            "fault": "service-down",
            "passed": True,
            "duration_s": 4.8,
            "finished_at": "2026-11-22T08:08:23+00:00",
        }
    }
    (drills / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    site_dir = tmp_path_factory.mktemp("site-rules")
    return site_dir, mkdocs_build(project, site_dir)


def test_alerts_page_lists_every_rule_with_its_runbook(
    project_with_rules: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    site_dir, result = project_with_rules
    page = text_of(built(result, site_dir) / "alerts" / "index.html")
    assert "ServiceDown" in page
    assert "HighErrorRate" in page
    assert 'up{job="api"} == 0' in page
    assert "job:http_requests:rate1m" not in page, "recording rules are not alerts"
    html = (site_dir / "alerts" / "index.html").read_text(encoding="utf-8")
    assert 'href="../runbooks/service-down/"' in html
    assert "runbook not written yet (payment-errors)" in page


def test_an_alert_whose_runbook_is_not_written_yet_warns_without_failing_strict(
    project_with_rules: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    _, result = project_with_rules
    assert result.returncode == 0, result.stderr
    assert "alert HighErrorRate" in result.stderr
    assert "https://runbooks.example.internal/runbooks/payment-errors/" in result.stderr


def test_a_runbook_url_outside_the_site_fails_the_build_naming_alert_and_url(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bad = FIXTURE_RULES.replace(
        "https://runbooks.example.internal/runbooks/service-down/", "https://wiki.example.org/ServiceDown"
    )
    project = copy_project(tmp_path_factory.mktemp("project-bad-url"), rules=bad)
    result = mkdocs_build(project, tmp_path_factory.mktemp("site-bad-url"))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "alert ServiceDown" in output
    assert "https://wiki.example.org/ServiceDown" in output


def _rule(runbook_url: str) -> AlertRule:
    return AlertRule(
        name="ServiceDown", expr="up == 0", duration="10s", severity="SEV1", summary="", description="",
        runbook_url=runbook_url, group="api", source=Path("alerts.yml"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("site_url", "runbook_url"),
    [
        # as published
        ("https://runbooks.example.internal/", "https://runbooks.example.internal/runbooks/service-down/"),
        # as `mkdocs serve` rewrites site_url: the same rules build the same page
        ("http://127.0.0.1:8000/", "https://runbooks.example.internal/runbooks/service-down/"),
        # published under a path, which `mkdocs serve` keeps
        ("http://127.0.0.1:8000/ops/", "https://example.internal/ops/runbooks/service-down/"),
    ],
)
def test_a_runbook_url_is_checked_by_its_path_wherever_the_site_is_served(
    site_url: str, runbook_url: str
) -> None:
    (link,) = link_alerts([_rule(runbook_url)], site_url, ["service-down"])
    assert (link.slug, link.written) == ("service-down", True)


@pytest.mark.parametrize(
    "runbook_url",
    [
        "https://example.internal/runbooks/service-down/",  # the site lives under /ops/
        "https://example.internal/ops/runbooks/service-down",  # not the page's directory URL
        "https://example.internal/ops/runbooks/Service_Down/",  # not a slug
        "/ops/runbooks/service-down/",  # not an absolute URL: an alert is read outside the site
        "",
    ],
)
def test_a_runbook_url_off_the_sites_path_fails(runbook_url: str) -> None:
    with pytest.raises(SiteError, match="alert ServiceDown"):
        link_alerts([_rule(runbook_url)], "https://example.internal/ops/", ["service-down"])


def test_without_a_rule_file_the_alerts_page_says_so(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = copy_project(tmp_path_factory.mktemp("project-no-rules"))
    site_dir = tmp_path_factory.mktemp("site-no-rules")
    page = built(mkdocs_build(project, site_dir), site_dir) / "alerts" / "index.html"
    assert "No alert rules configured" in text_of(page)


def test_runbooks_json_indexes_every_runbook(
    project_with_rules: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    site_dir, result = project_with_rules
    index = json.loads((built(result, site_dir) / "runbooks.json").read_text(encoding="utf-8"))
    slugs = {entry["slug"]: entry for entry in index["runbooks"]}
    pages = {p.stem for p in (REPO / "docs" / "runbooks").glob("*.md") if p.name != "index.md"}
    assert set(slugs) == pages
    entry = slugs["service-down"]
    assert entry["url"] == "https://runbooks.example.internal/runbooks/service-down/"
    assert entry["severity"] == "SEV1"
    assert entry["alerts"] == ["ServiceDown"]
    assert entry["review_status"] in ("ok", "due", "overdue")
    assert entry["drills"] == [
        {
            "fault": "service-down",
            "passed": True,
            "duration_s": 4.8,
            "finished_at": "2026-11-22T08:08:23+00:00",
        }
    ]
    for key in ("title", "owner", "last_verified", "last_reviewed"):
        assert key in entry


def test_runbook_badge_and_catalogue_show_the_drill(
    project_with_rules: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    site_dir, result = project_with_rules
    page = text_of(built(result, site_dir) / "runbooks" / "service-down" / "index.html")
    assert "drill passed in 4.8 s" in page
    catalogue = text_of(site_dir / "runbooks" / "index.html")
    assert "drill passed in 4.8 s (2026-11-22)" in catalogue


def test_templates_page_has_the_form_every_template_and_policy_values(site: Path) -> None:
    html = (site / "templates" / "index.html").read_text(encoding="utf-8")
    assert 'id="drillbook-template-form"' in html
    assert 'id="drillbook-policy"' in html
    page = text_of(site / "templates" / "index.html")
    for heading in (
        "Investigating", "Identified", "Monitoring", "Resolved", "Customer e-mail",
        "Internal announcement", "Severity-one notification", "Update", "Resolution notice",
        "Incident report", "Post-mortem", "Post-mortem meeting agenda",
    ):  # fmt: skip
        assert heading in page, heading
    policy = load_severity(REPO / "policy" / "severity.yml")
    sev1 = policy.level("SEV1")
    assert f"Updates every {format_duration(sev1.update_every)}" in page


def test_every_placeholder_in_the_templates_is_declared() -> None:
    declared = {p.name for p in read_placeholders(REPO / "docs" / "templates" / "placeholders.yml")}
    for page in (REPO / "docs" / "templates").glob("*.md"):
        used = set(PLACEHOLDER.findall(page.read_text(encoding="utf-8")))
        assert used <= declared, f"{page}: {used - declared}"


def test_an_undeclared_placeholder_fails_the_build(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = copy_project(tmp_path_factory.mktemp("project-placeholder"))
    page = project / "docs" / "templates" / "index.md"
    page.write_text(page.read_text(encoding="utf-8") + "\n```text\n[[no_such_name]]\n```\n", encoding="utf-8")
    result = mkdocs_build(project, tmp_path_factory.mktemp("site-placeholder"))
    assert result.returncode != 0
    assert "[[no_such_name]]" in result.stdout + result.stderr


def test_escalation_page_has_a_ladder_per_level_and_a_table_by_elapsed_time(site: Path) -> None:
    html = (site / "escalation" / "index.html").read_text(encoding="utf-8")
    policy = load_severity(REPO / "policy" / "severity.yml")
    for level in policy.levels:
        assert f'class="drillbook-mermaid" data-level="{level.id}"' in html
    assert "flowchart TD" in html
    rows = [row for row in parse(site / "escalation" / "index.html").rows if row and row[0] == "Elapsed"]
    assert rows
    assert rows[0][1:] == [level.label for level in policy.levels]


def test_severity_page_has_the_decision_aid_from_the_policy(site: Path) -> None:
    page = text_of(site / "severity" / "index.html")
    assert "Which severity is this?" in page
    policy = load_severity(REPO / "policy" / "severity.yml")
    for level in policy.levels:  # every trigger in the policy's words and numbers, none of the page's own
        for name, threshold in level.triggers.thresholds.items():
            measure = policy.measures[name]
            past = "exceeds" if measure.worse == "above" else "falls below"
            assert f"the {measure.description} {past} {measure.format(threshold)}" in page
        for condition in level.triggers.conditions:
            assert policy.conditions[condition].rstrip(".") in page


def test_print_page_holds_every_runbook_with_its_steps(site: Path) -> None:
    page = text_of(site / "print" / "index.html")
    for runbook in read_runbook_pages(REPO / "docs" / "runbooks"):
        assert runbook.title in page
    rendered = "\n".join(parse(site / "print" / "index.html").code)
    for code in tagged_code(REPO / "notebooks" / "service-down.py", "diagnosis"):
        for line in filter(str.strip, code.splitlines()):
            assert line in rendered


def test_print_page_has_the_policy_first_then_runbooks_by_severity_then_title(site: Path) -> None:
    page = (site / "print" / "index.html").read_text(encoding="utf-8")
    policy = load_severity(REPO / "policy" / "severity.yml")
    order = {level.id: index for index, level in enumerate(policy.levels)}
    runbooks = read_runbook_pages(REPO / "docs" / "runbooks")
    expected = [
        p.slug for p in sorted(runbooks, key=lambda p: (order[policy.level(p.severity).id], p.title.lower()))
    ]
    sections = re.findall(r'<section class="drillbook-print-runbook" id="runbook-([^"]+)"', page)
    assert sections == expected
    listed = re.findall(r'data-page-of="([^"]+)"', page)
    assert listed == ["print-severity", "print-escalation", *(f"runbook-{slug}" for slug in expected)]
    first_runbook = page.index('<section class="drillbook-print-runbook"')
    assert page.index('id="print-severity"') < page.index('id="print-escalation"') < first_runbook
    text = text_of(site / "print" / "index.html")
    assert "Acknowledge within" in text  # the severity matrix
    assert "How to reach" in text  # the escalation contacts


def test_every_link_of_the_print_page_lands_somewhere(site: Path) -> None:
    """The runbooks' HTML is moved into the print page: its links must still resolve."""
    page = (site / "print" / "index.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'id="([^"]+)"', page))
    anchors = re.findall(r'href="#([^"]+)"', page)
    assert "runbook-service-down" in anchors
    assert [anchor for anchor in anchors if anchor not in ids] == []
    for link in set(re.findall(r'href="([^"#:]+)(?:#[^"]*)?"', page)):
        target = (site / "print" / link).resolve()
        assert target.is_file() or (target / "index.html").is_file(), link


def test_process_and_roles_pages_cover_phases_roles_and_on_call(site: Path) -> None:
    process = text_of(site / "process" / "index.html")
    for phase in ("Detect and acknowledge", "Triage", "Communicate", "Mitigate", "Resolve", "Post-incident"):
        assert phase in process
    roles = text_of(site / "roles" / "index.html")
    for role in ("Incident commander", "Communications lead", "Scribe", "Subject-matter experts",
                 "Primary on-call", "Secondary on-call", "Rotation and hand-over"):  # fmt: skip
        assert role in roles


def test_review_status_is_ok_then_due_then_overdue() -> None:
    (page,) = (p for p in read_runbook_pages(REPO / "docs" / "runbooks") if p.slug == "service-down")
    due = page.review_due()
    assert due is not None
    assert page.review_status(due - timedelta(days=30)) == "ok"
    assert page.review_status(due - timedelta(days=3)) == "due"
    assert page.review_status(due + timedelta(days=1)) == "overdue"


def test_badge_names_the_verified_run_and_the_drills() -> None:
    when = datetime(2026, 11, 22, 8, 8, tzinfo=UTC)
    run = Verification(at=when, status="ok", environment="sandbox", duration_s=2.1)
    passed = DrillResult(fault="service-down", passed=True, duration_s=4.8, finished_at=when)
    failed = DrillResult(fault="db-down", passed=False, duration_s=60.0, finished_at=when)
    assert render_badge(run, [passed]) == (
        '!!! success "Verified against the sandbox on 2026-11-22 08:08 UTC; drill passed in 4.8 s"'
    )
    assert render_badge(None).startswith('!!! warning "Not verified in this build')
    assert "drill failed: fault db-down" in render_badge(run, [passed, failed])
    assert render_badge(run, [passed, failed]).startswith("!!! failure")


def test_drill_summary_accepts_one_result_or_a_list(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    one = {"fault": "a", "passed": True, "duration_s": 1, "finished_at": "2026-11-22T08:00:00Z"}
    summary.write_text(json.dumps({"x": one, "y": [one, {**one, "passed": False}]}), encoding="utf-8")
    drills = read_drills(summary)
    assert len(drills["x"]) == 1
    assert len(drills["y"]) == 2
    assert not drills["y"][1].passed
    summary.write_text(json.dumps({"x": "passed"}), encoding="utf-8")
    with pytest.raises(SiteError, match="'x'"):
        read_drills(summary)


def test_the_signals_page_lists_every_signal_and_what_each_environment_maps(site: Path) -> None:
    from checks import load_environments
    from checks.signals import DEFAULTS

    page = (site / "signals" / "index.html").read_text(encoding="utf-8")
    for name, signal in DEFAULTS.items():
        assert f"<code>{name}</code>" in page, name
        if signal.metric:
            assert f"<code>{signal.metric}</code>" in page, signal.metric
    for env in load_environments():
        assert f'id="{env}"' in page, env
    assert "<code>upstream_requests_total</code>" in page  # the sandbox's own name for a signal


def test_escalation_contacts_are_rendered_from_the_policy_with_every_way_to_reach_them(site: Path) -> None:
    from checks import load_escalation

    page = (site / "escalation" / "index.html").read_text(encoding="utf-8")
    for contact in load_escalation().contacts.values():
        assert html.escape(contact.name, quote=False) in page, contact.key
        for _, address in contact.reach:
            assert f"<code>{html.escape(address, quote=False)}</code>" in page, (contact.key, address)
    security = (site / "runbooks" / "security-incident" / "index.html").read_text(encoding="utf-8")
    assert "<strong>Security on-call</strong> (pager <code>security-primary</code>" in security


def test_the_templates_page_is_in_the_navigation_under_its_own_name(site: Path) -> None:
    page = " ".join((site / "index.html").read_text(encoding="utf-8").split())
    assert re.search(
        r'<a href="templates/" class="md-nav__link ?"> <span class="md-ellipsis"> Templates </span>', page
    )
    assert not re.search(r'<a href="templates/"[^>]*> <span class="md-ellipsis"> During an incident', page)


# --------------------------------------------------------------------------- by hand, beside each step


def by_hand_folds(page: Path) -> list[dict[str, list[str]]]:
    """The by-hand folds of a built page: each as its code blocks by language."""
    text = page.read_text(encoding="utf-8")
    folds = re.findall(
        rf'<details class="example">\s*<summary>{re.escape(BY_HAND_TITLE)}</summary>(.*?)</details>',
        text,
        re.S,
    )
    found = []
    for fold in folds:
        blocks: dict[str, list[str]] = {}
        for language, code in re.findall(r'<code class="language-(\w+)">(.*?)</code>', fold, re.S):
            blocks.setdefault(language, []).append(html.unescape(code))
        found.append(blocks)
    return found


def test_a_database_step_shows_the_sql_of_its_check_to_run_by_hand(site: Path) -> None:
    production = Targets.from_env("production", declared_only=True)
    holders, limits = manuals(postgres.check_connections, production) or []
    folds = by_hand_folds(site / "runbooks" / "database-connections" / "index.html")
    assert any(holders.text in fold.get("sql", ()) for fold in folds), "no fold shows check_connections' SQL"
    assert any(shell(production, limits) in fold.get("sh", ()) for fold in folds)
    assert 'PGPASSWORD="$DRILLBOOK_PRODUCTION_PGPASSWORD" psql' in shell(production, limits)


def test_an_error_rate_step_shows_its_promql_to_run_by_hand(site: Path) -> None:
    production = Targets.from_env("production", declared_only=True)
    (ratio,) = manuals(prometheus.check_route_error_ratio, production) or []
    folds = by_hand_folds(site / "runbooks" / "high-error-rate" / "index.html")
    assert any(ratio.text in fold.get("promql", ()) for fold in folds), (
        "no fold shows the error ratio's PromQL"
    )
    assert "https://prometheus.example.internal/api/v1/query" in shell(production, ratio)
    steps = parse(site / "runbooks" / "high-error-rate" / "index.html")
    assert not any("By hand" in code for code in steps.code), (
        "the fold is prose and code, not inside the code"
    )


def test_the_by_hand_environment_is_the_one_mkdocs_yml_names(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = copy_project(tmp_path_factory.mktemp("project-by-hand"))
    config = project / "mkdocs.yml"
    text = config.read_text(encoding="utf-8")
    assert "\nextra:" not in text
    config.write_text(text + "\nextra:\n  drillbook:\n    by_hand_environment: staging\n", "utf-8")
    site_dir = tmp_path_factory.mktemp("site-by-hand")
    page = built(mkdocs_build(project, site_dir), site_dir) / "runbooks" / "database-down" / "index.html"
    sh = [line for fold in by_hand_folds(page) for line in fold.get("sh", ())]
    assert any("db.staging.example.internal" in line for line in sh), sh
    assert not any("db.example.internal" in line for line in sh)
