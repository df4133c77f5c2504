"""`drillbook lint` on fixture repositories: a valid one, and one broken runbook per defect."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jsonschema
import pytest

import drillbook.lint
from drillbook.lint import Finding, Report, main, run

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = date(2026, 11, 22)
REPO = Path(__file__).resolve().parents[2]


def make_repo(destination: Path, *overlays: Path) -> Path:
    """A copy of the valid fixture repository, with `overlays` copied over it in order."""
    shutil.copytree(FIXTURES / "repo", destination)
    for overlay in overlays:
        shutil.copytree(overlay, destination, dirs_exist_ok=True)
    return destination


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def messages(report: Report) -> list[str]:
    return [str(finding) for finding in report.findings]


# --------------------------------------------------------------------------- the valid repository


def test_a_valid_repository_has_no_findings() -> None:
    report = run(FIXTURES / "repo", today=TODAY)
    assert messages(report) == []
    assert report.ok
    assert report.summary() == "drillbook lint: 0 errors, 0 warnings in 1 runbook"


# --------------------------------------------------------------------------- the broken runbooks


@dataclass(frozen=True)
class Expected:
    path: str
    line: int
    level: str
    text: str

    def matches(self, finding: Finding) -> bool:
        return (finding.path, finding.line, finding.level) == (
            self.path,
            self.line,
            self.level,
        ) and self.text in finding.message

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.level}: {self.text}"


def _expected() -> list[Expected]:
    found = []
    for text in (FIXTURES / "broken" / "expected.txt").read_text(encoding="utf-8").splitlines():
        if text.strip() and not text.startswith("#"):
            match = re.match(r"^(\S+):(\d+): (error|warning): (.+)$", text)
            assert match, f"expected.txt: cannot read {text!r}"
            found.append(Expected(match[1], int(match[2]), match[3], match[4]))
    return found


EXPECTED = _expected()


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Report:
    root = make_repo(tmp_path_factory.mktemp("broken") / "repo", FIXTURES / "broken")
    return run(root, today=TODAY)


def test_every_broken_runbook_has_its_defect_listed() -> None:
    pages = {p.stem for p in (FIXTURES / "broken" / "docs" / "runbooks").glob("*.md")}
    notebooks = {p.stem for p in (FIXTURES / "broken" / "notebooks").glob("*.py")}
    listed = {Path(e.path).stem for e in EXPECTED}
    # a runbook is broken in its page or in its notebook; the alert and fault
    # defects of some live in the overlay's rule file and catalogue instead
    in_rules = {"off-site-url", "missing-runbook-url", "mismatched-url", "bad-alert-severity"}
    in_catalogue = {"fault-with-unknown-alert"}
    assert (pages | notebooks) - listed - in_rules - in_catalogue == set()


@pytest.mark.parametrize("expected", EXPECTED, ids=str)
def test_the_defect_is_reported_at_its_place(broken: Report, expected: Expected) -> None:
    assert any(expected.matches(f) for f in broken.findings), "\n".join(
        ["not reported; the findings of that file are:"]
        + [str(f) for f in broken.findings if f.path == expected.path]
    )


def test_nothing_but_the_defects_is_reported(broken: Report) -> None:
    unexpected = [str(f) for f in broken.findings if not any(e.matches(f) for e in EXPECTED)]
    assert unexpected == []


# --------------------------------------------------------------------------- inputs that do not exist (yet)


def test_a_configured_rule_file_that_does_not_exist_is_an_error_naming_the_config(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'alert_rules = ["sandbox/config/rules/alerts.yml"]',
            'alert_rules = [\n    "sandbox/config/rules/alerts.yml",\n    "rules/missing.yml",\n]',
        )
    )
    report = run(repo, today=TODAY)
    assert messages(report) == [
        "pyproject.toml:8: error: the alert rule file rules/missing.yml does not exist "
        "([tool.drillbook] alert_rules names it); list the rule files Prometheus loads, or [] for none"
    ]


def test_without_configuration_the_default_rule_file_is_read(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text('[project]\nname = "fixture"\n')
    assert messages(run(repo, today=TODAY)) == []
    (repo / "sandbox" / "config" / "rules" / "alerts.yml").unlink()
    [finding] = run(repo, today=TODAY).findings
    assert (finding.path, finding.line, finding.level) == ("pyproject.toml", 1, "error")
    assert "sandbox/config/rules/alerts.yml does not exist" in finding.message
    assert "default of [tool.drillbook] alert_rules" in finding.message


def test_no_rule_files_means_no_alert_can_be_listed(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["sandbox/config/rules/alerts.yml"]', "[]"))
    assert messages(run(repo, today=TODAY)) == [
        "docs/runbooks/service-down.md:7: error: alert 'ServiceDown' is not defined in the alert rule files "
        "(none)",
        "sandbox/faults.yml:4: error: fault 'service-down': alert 'ServiceDown' is not in the alert rule "
        "files",
    ]


def test_a_missing_fault_catalogue_is_an_error_where_a_runbook_lists_faults(repo: Path) -> None:
    (repo / "sandbox" / "faults.yml").unlink()
    assert messages(run(repo, today=TODAY)) == [
        "docs/runbooks/service-down.md:8: error: the page lists faults, but the fault catalogue "
        "sandbox/faults.yml does not exist ([tool.drillbook] faults)"
    ]
    page = repo / "docs" / "runbooks" / "service-down.md"
    page.write_text(page.read_text().replace("faults: [service-down]", "faults: []"))
    assert messages(run(repo, today=TODAY)) == []


def test_without_a_templates_folder_there_is_nothing_to_check(repo: Path) -> None:
    shutil.rmtree(repo / "docs" / "templates")
    assert messages(run(repo, today=TODAY)) == []


def test_templates_with_placeholders_need_the_placeholder_declarations(repo: Path) -> None:
    (repo / "docs" / "templates" / "placeholders.yml").unlink()
    assert messages(run(repo, today=TODAY)) == [
        "docs/templates/status-page.md:4: error: the templates use placeholders, but "
        "docs/templates/placeholders.yml, which declares them, does not exist"
    ]


def test_without_site_url_no_runbook_url_can_be_checked(repo: Path) -> None:
    mkdocs = repo / "mkdocs.yml"
    mkdocs.write_text(mkdocs.read_text().replace("site_url: https://runbooks.example.internal/\n", ""))
    [finding] = run(repo, today=TODAY).findings
    assert (finding.path, finding.line, finding.level) == ("mkdocs.yml", 1, "error")
    assert "mkdocs.yml has no site_url" in finding.message


def test_a_missing_severity_policy_is_an_error(repo: Path) -> None:
    (repo / "policy" / "severity.yml").unlink()
    assert "policy/severity.yml:1: error: the severity policy does not exist" in "\n".join(
        messages(run(repo, today=TODAY))
    )


def test_an_executed_notebook_beside_the_notebooks_is_a_warning(repo: Path) -> None:
    (repo / "notebooks" / "service-down.ipynb").write_text("{}")
    [finding] = run(repo, today=TODAY).findings
    assert (finding.path, finding.level) == ("notebooks/service-down.ipynb", "warning")


# --------------------------------------------------------------------------- review dates


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2026, 1, 1), []),
        (date(2026, 1, 16), ["warning: review due on 2026-01-30 (in 14 days)"]),
        (date(2026, 1, 30), ["warning: review due on 2026-01-30 (today)"]),
        (date(2026, 1, 31), ["error: review overdue since 2026-01-30 (1 days"]),
    ],
)
def test_review_dates_are_measured_against_the_injected_today(
    repo: Path, today: date, expected: list[str]
) -> None:
    page = repo / "docs" / "runbooks" / "service-down.md"
    page.write_text(page.read_text().replace("last_reviewed: 2026-11-01", "last_reviewed: 2025-11-01"))
    found = [f"{f.level}: {f.message}" for f in run(repo, today=today).findings]
    assert len(found) == len(expected)
    for text, wanted in zip(found, expected, strict=True):
        assert text.startswith(wanted)


# --------------------------------------------------------------------------- the command


def test_main_prints_sorted_findings_then_a_summary_and_fails_on_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo", FIXTURES / "broken")
    code = main(["--root", str(root), "--today", "2026-11-22"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[-1] == f"drillbook lint: {len(lines) - 4} errors, 3 warnings in 47 runbooks"
    findings = lines[:-1]
    assert findings == sorted(findings, key=_place)
    assert all(re.match(r"^\S+:\d+: (error|warning): \S", line) for line in findings)


def _place(line: str) -> tuple[str, int]:
    path, number, _ = line.split(":", 2)
    return path, int(number)


def test_main_succeeds_with_warnings_only(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--root", str(repo), "--today", "2027-01-20"])  # the review is due in 10 days
    out = capsys.readouterr().out
    assert code == 0
    assert out.endswith("drillbook lint: 0 errors, 1 warning in 1 runbook\n")


def test_the_public_api() -> None:
    assert drillbook.lint.__all__ == ["Finding", "Level", "Report", "main", "run"]


def test_the_front_matter_schema_is_a_valid_json_schema() -> None:
    path = REPO / "drillbook" / "schemas" / "runbook.schema.json"
    jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_linting_this_repository_reports_places_inside_it() -> None:
    report = run(REPO)
    for finding in report.findings:
        assert not Path(finding.path).is_absolute(), finding
        assert finding.line >= 1, finding


# --------------------------------------------------------------------------- runbooks acknowledged as pending


def _add_alert_without_runbook(repo: Path) -> None:
    rules = repo / "sandbox" / "config" / "rules" / "alerts.yml"
    rules.write_text(
        rules.read_text()
        + """
      - alert: CacheColdAfterDeploy
        expr: vector(1)
        labels:
          severity: SEV3
        annotations:
          summary: the cache is cold
          runbook_url: https://runbooks.example.internal/runbooks/cache-degradation/
"""
    )


def test_an_alert_whose_runbook_is_pending_is_a_warning_not_an_error(repo: Path) -> None:
    _add_alert_without_runbook(repo)
    assert any("alert CacheColdAfterDeploy has no runbook" in m for m in messages(run(repo, today=TODAY)))
    assert not run(repo, today=TODAY).ok

    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'runbooks_pending = ["cache-degradation"]\n')
    report = run(repo, today=TODAY)
    assert report.ok, messages(report)
    (warning,) = report.warnings
    assert "has no runbook yet: write docs/runbooks/cache-degradation.md" in warning.message


def test_a_pending_runbook_that_exists_must_leave_the_list(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    slug = next((repo / "docs" / "runbooks").glob("*.md"), None)
    assert slug is not None
    pyproject.write_text(pyproject.read_text() + f'runbooks_pending = ["{slug.stem}"]\n')
    report = run(repo, today=TODAY)
    assert (
        f"runbook {slug.stem} is written: remove it from [tool.drillbook] runbooks_pending"
        in messages(report)[0]
    )
    assert not report.ok


@pytest.mark.parametrize("relative", ["notebooks/service-down.py", "docs/runbooks/service-down.md"])
def test_a_file_that_is_not_utf8_is_named_with_its_line_not_a_traceback(repo: Path, relative: str) -> None:
    path = repo / relative
    lines = path.read_bytes().split(b"\n")
    lines[5] += " café".encode("latin-1")  # line 6 gets a byte that is no UTF-8
    path.write_bytes(b"\n".join(lines))
    found = [m for m in messages(run(repo, today=TODAY)) if "UTF-8" in m]
    assert found == [f"{relative}:6: error: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


@pytest.mark.parametrize("relative", ["notebooks/service-down.py", "docs/runbooks/service-down.md"])
def test_a_secret_written_into_a_notebook_or_a_page_is_an_error_at_its_line(
    repo: Path, relative: str
) -> None:
    path = repo / relative
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(6, "# the admin DSN: postgresql://admin:hunter22-example@db.internal:5432/app")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = [m for m in messages(run(repo, today=TODAY)) if "shaped like a secret" in m]
    assert [m.split(": error:")[0] for m in found] == [f"{relative}:7"]


def test_a_notebook_without_a_parameter_that_run_sets_is_told_what_to_add(repo: Path) -> None:
    path = repo / "notebooks" / "service-down.py"
    path.write_text(path.read_text(encoding="utf-8").replace('confirm = ""\n', "\n"), encoding="utf-8")
    found = [m for m in messages(run(repo, today=TODAY)) if "does not define 'confirm'" in m]
    assert len(found) == 1
    assert 'which drillbook run sets (env, apply, confirm): add confirm = ""' in found[0]


def test_a_need_no_environment_can_declare_is_named_with_its_line(repo: Path) -> None:
    page = repo / "docs" / "runbooks" / "service-down.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(
        text.replace("\nowner:", "\nneeds: [reference-admin, teleporter]\nowner:", 1), encoding="utf-8"
    )
    line = page.read_text(encoding="utf-8").splitlines().index("needs: [reference-admin, teleporter]") + 1
    [finding] = run(repo, today=TODAY).findings
    assert finding.path.endswith("service-down.md")
    assert finding.line == line
    assert "needs 'teleporter', which no environment can declare" in finding.message
    assert "reference-tables" in finding.message


def test_an_alert_labelled_with_another_level_than_its_runbook_is_an_error_at_the_label(repo: Path) -> None:
    rules = repo / "sandbox" / "config" / "rules" / "alerts.yml"
    rules.write_text(
        rules.read_text(encoding="utf-8").replace("severity: SEV1", "severity: SEV3", 1), encoding="utf-8"
    )
    runbook, policy = run(repo, today=TODAY).findings  # and where it fires, the policy says SEV1
    assert runbook.path.endswith("alerts.yml")
    assert runbook.line == 10
    assert (
        "is labelled SEV3, but its runbook docs/runbooks/service-down.md says severity SEV1"
        in runbook.message
    )
    assert "is labelled SEV3, but policy/severity.yml gives SEV1 at availability == 0 %" in policy.message


# --------------------------------------------------------------------------- numbers written twice


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_an_alert_labelled_with_a_level_the_policy_does_not_give_where_it_fires_is_an_error(
    repo: Path,
) -> None:
    rules = repo / "sandbox" / "config" / "rules" / "alerts.yml"
    _replace(rules, 'expr: up{job="api"} == 0', 'expr: up{job="api"} < 0.95')
    [finding] = run(repo, today=TODAY).findings
    assert finding.path.endswith("alerts.yml")
    assert finding.line == 10  # the label
    assert "is labelled SEV1, but policy/severity.yml gives SEV3 at availability < 95 %" in finding.message


def test_an_alert_whose_comparison_points_the_wrong_way_for_its_trigger_is_an_error(repo: Path) -> None:
    rules = repo / "sandbox" / "config" / "rules" / "alerts.yml"
    _replace(rules, 'expr: up{job="api"} == 0', 'expr: up{job="api"} > 0.5')
    [finding] = run(repo, today=TODAY).findings
    assert "availability is worse below, but the expression fires when it is > 0.5" in finding.message


def test_a_threshold_changed_without_the_alerts_summary_is_an_error_at_the_summary(repo: Path) -> None:
    rules = repo / "sandbox" / "config" / "rules" / "alerts.yml"
    _replace(rules, "summary: The API answers no requests.", "summary: Less than 50 % of the API answers.")
    _replace(rules, 'expr: up{job="api"} == 0', 'expr: up{job="api"} < 0.9')
    found = messages(run(repo, today=TODAY))
    assert any(
        "alerts.yml:13" in m and "the summary states '50 %', but the expression fires at 0.9" in m
        for m in found
    )


def test_a_number_written_into_the_policys_prose_is_an_error_that_names_the_trigger(repo: Path) -> None:
    policy = repo / "policy" / "severity.yml"
    _replace(policy, "More than {error_ratio_above} of requests fail.", "More than one request in ten fails.")
    [restated] = run(repo, today=TODAY).findings
    assert restated.path == "policy/severity.yml"
    assert "SEV2: the prose states 'one request in ten', the trigger error_ratio_above" in restated.message
    # The trigger changed, its old number left in the prose: a contradiction.
    _replace(policy, "error_ratio_above: 0.10", "error_ratio_above: 0.15")
    [stale] = [f for f in run(repo, today=TODAY).findings if f.path == "policy/severity.yml"]
    assert "states 'one request in ten', which no trigger of SEV2 holds" in stale.message
    assert "error_ratio_above 15 %" in stale.message


def test_a_runbook_page_that_states_a_number_the_policy_does_not_hold_is_an_error(repo: Path) -> None:
    page = repo / "docs" / "runbooks" / "service-down.md"
    page.write_text(
        page.read_text(encoding="utf-8") + "\nThe policy pages from 12 % of failed requests.\n",
        encoding="utf-8",
    )
    [finding] = run(repo, today=TODAY).findings
    assert finding.path == "docs/runbooks/service-down.md"
    assert "the page states '12 %' beside the policy" in finding.message


def test_a_check_default_that_contradicts_the_policy_is_an_error_at_the_check(repo: Path) -> None:
    policy = repo / "policy" / "severity.yml"
    _replace(policy, "error_ratio_above: 0.05", "error_ratio_above: 0.06")  # SEV3's, where checks WARN
    found = messages(run(repo, today=TODAY))
    assert any(
        "checks/prometheus.py" in m and "check_error_ratio(warn=0.05) contradicts policy/severity.yml" in m
        for m in found
    ), found


def test_the_fault_catalogue_and_the_drills_are_where_the_project_says(repo: Path) -> None:
    """A team's project keeps them where it likes; lint reads `[tool.drillbook] faults` and `drills`."""
    (repo / "ops").mkdir()
    (repo / "sandbox" / "faults.yml").rename(repo / "ops" / "faults.yml")
    (repo / "tests" / "drills").rename(repo / "drills")
    pyproject = repo / "pyproject.toml"
    before = run(repo, today=TODAY)
    assert any("the fault catalogue sandbox/faults.yml does not exist" in str(f) for f in before.findings)
    pyproject.write_text(
        pyproject.read_text(encoding="utf-8") + 'faults = "ops/faults.yml"\ndrills = "drills"\n',
        encoding="utf-8",
    )
    assert messages(run(repo, today=TODAY)) == []


def test_notebooks_may_import_the_checks_packages_the_project_declares(repo: Path) -> None:
    notebook = repo / "notebooks" / "service-down.py"
    text = notebook.read_text(encoding="utf-8")
    notebook.write_text(
        text.replace(
            "from checks import Gate, Targets, http, restart_service, wait_until_ok\n",
            "from checks import Gate, Targets, http, restart_service, wait_until_ok\n"
            "from orders_checks import queue\nfrom orders_checks._internal import raw\n",
        ),
        encoding="utf-8",
    )
    undeclared = messages(run(repo, today=TODAY))
    assert any(
        "imports from orders_checks: a notebook imports only the public API of checks" in m
        for m in undeclared
    )
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text(encoding="utf-8") + 'checks_packages = ["orders_checks"]\n', encoding="utf-8"
    )
    [private] = messages(run(repo, today=TODAY))  # the team's public API, never its private modules
    assert (
        "imports from orders_checks._internal: a notebook imports only the public API of checks, orders_"
        in (private)
    )
