"""The alert rules and the Alertmanager configurations, through Prometheus's own tools.

`promtool check rules` validates every rule file; `promtool test rules` runs
alerts.test.yml, one test per alert: quiet just on one side of its threshold,
firing just on the other. Each alert's comparison is then inverted in a scratch
copy, and its test must fail: a test that cannot fail proves nothing.
`amtool check-config` validates every Alertmanager configuration the project ships.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from string import Template

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "sandbox" / "config" / "rules"
ALERTS = RULES / "alerts.yml"
UNIT_TESTS = Path(__file__).with_name("alerts.test.yml")
ALERTMANAGER_CONFIGS = [
    *sorted((REPO / "sandbox" / "config").glob("alertmanager*.yml")),
    REPO / "deploy" / "alertmanager.yml",  # the example of drillbook receive's deployment
]
TOOL_TIMEOUT_S = 60
# Each comparison and its opposite: what an inverted alert would test.
OPPOSITE = {">=": "<", "<=": ">", "==": "!=", "!=": "==", ">": "<=", "<": ">="}
COMPARISON = re.compile(r"(>=|<=|==|!=|>|<)(?=\s*[0-9])")


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(
            f"{name} is not installed (Debian: prometheus and prometheus-alertmanager); make test installs it"
        )
    return found


def _run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=False, cwd=cwd)


def _alerts() -> list[dict[str, object]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_rule_file_passes_promtool_check_rules() -> None:
    files = sorted(RULES.glob("*.yml"))
    done = _run(_tool("promtool"), "check", "rules", *map(str, files))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files), done.stdout


def test_every_alert_has_a_unit_test() -> None:
    tested = {
        match
        for test in yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))["tests"]
        for case in test.get("promql_expr_test", [])
        for match in re.findall(r'alertname="([^"]+)"', case["expr"])
    }
    assert {str(rule["alert"]) for rule in _alerts()} == tested


def test_the_alert_rules_pass_their_unit_tests() -> None:
    done = _run(_tool("promtool"), "test", "rules", UNIT_TESTS.name, cwd=UNIT_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("alert", [str(rule["alert"]) for rule in _alerts()])
def test_an_alert_with_its_comparison_inverted_fails_its_unit_test(alert: str, tmp_path: Path) -> None:
    """The scratch copy keeps the layout the unit tests' rule_files point at."""
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    (rule,) = [r for g in document["groups"] for r in g["rules"] if r.get("alert") == alert]
    expr = str(rule["expr"])
    match = COMPARISON.search(expr)
    assert match, f"{alert}: no comparison with a number in {expr!r}"
    rule["expr"] = expr[: match.start()] + OPPOSITE[match[1]] + expr[match.end() :]
    rules = tmp_path / "sandbox" / "config" / "rules"
    rules.mkdir(parents=True)
    shutil.copy2(RULES / "recording.yml", rules / "recording.yml")
    (rules / "alerts.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    tests = tmp_path / "tests" / "prometheus"
    tests.mkdir(parents=True)
    shutil.copy2(UNIT_TESTS, tests / UNIT_TESTS.name)
    done = _run(_tool("promtool"), "test", "rules", UNIT_TESTS.name, cwd=tests)
    assert done.returncode != 0, f"{alert} with {rule['expr']!r} still passes its unit test"
    assert f'alertname="{alert}"' in done.stdout + done.stderr


@pytest.mark.parametrize("config", ALERTMANAGER_CONFIGS, ids=lambda path: path.name)
def test_every_alertmanager_configuration_passes_amtool(config: Path, tmp_path: Path) -> None:
    # The native driver fills the URLs and the token's file; the compose one is used as it is.
    token = tmp_path / "drillbook-token"
    token.write_text("a-token\n", encoding="utf-8")
    rendered = tmp_path / config.name
    rendered.write_text(
        Template(config.read_text(encoding="utf-8")).substitute(
            receiver_url="http://127.0.0.1:9", drillbook_url="http://127.0.0.1:10", drillbook_token_file=token
        ),
        encoding="utf-8",
    )
    done = _run(_tool("amtool"), "check-config", str(rendered))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
