"""By hand: every check a runbook step calls has a by-hand form, made from the check's own query,
with its own defaults, and its command line quotes what it sends and never holds a secret."""

from __future__ import annotations

import ast
import importlib
import json
import os
import shlex
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jupytext
import pytest

from checks import Targets, by_hand, http, postgres, prometheus, redis
from checks.by_hand import Manual, manuals, shell
from checks.reference_service import costs, flags, upstream
from checks.testing import prometheus_transport, targets

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
PACKAGES = ("checks", "checks.reference_service")


def notebook_checks() -> Iterator[tuple[str, str, Callable[..., Any]]]:
    """(notebook, `module.check_x`, the check) for every check a diagnosis or verify cell of a
    notebook calls, or hands to wait_until_ok: any `<module>.check_*` named there, where the
    notebook imports `<module>` from checks or checks.reference_service."""
    for path in NOTEBOOKS:
        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        modules = {}
        for cell in cells:
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.ImportFrom) and node.module in PACKAGES:
                    for alias in node.names:
                        modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        for cell in cells:
            if not {"diagnosis", "verify"} & set(cell.metadata.get("tags", ())):
                continue
            for node in ast.walk(ast.parse(cell.source)):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in modules
                    and node.attr.startswith("check_")
                ):
                    check = getattr(importlib.import_module(modules[node.value.id]), node.attr)
                    yield path.stem, f"{node.value.id}.{node.attr}", check


CALLED = sorted({(label, check) for _, label, check in notebook_checks()}, key=lambda item: item[0])


def production() -> Targets:
    return Targets.from_env("production")


def test_the_notebooks_call_the_checks_this_test_expects_to_find() -> None:
    labels = {label for label, _ in CALLED}
    assert len(labels) >= 35, labels
    assert {"prometheus.check_error_ratio", "postgres.check_connections", "redis.check_ttls"} <= labels


@pytest.mark.parametrize(("label", "check"), CALLED, ids=[label for label, _ in CALLED])
def test_every_check_a_runbook_step_calls_has_a_by_hand_form(label: str, check: Callable[..., Any]) -> None:
    assert by_hand.registered(check), f"{label} registers no render: decorate it with @by_hand(...)"
    found = manuals(check, production())
    assert found, label
    for manual in found:
        assert manual.note, f"{label}: every Manual says what to look at"
        assert (manual.kind == "none") == (not manual.text), label


def test_a_check_without_a_render_has_none() -> None:
    assert manuals(prometheus.check_firing_alerts, production()) is None


# --------------------------------------------------------------------------- the check's own query


def sent_queries(check: Callable[..., Any], **kwargs: Any) -> set[str]:
    """Every PromQL `check` sends, with Prometheus answering every query, then none."""
    sent: set[str] = set()
    for answer in (1.0, None):

        def respond(query: str, answer: float | None = answer) -> list[tuple[dict[str, str], float]]:
            sent.add(query)
            return [] if answer is None else [({}, answer)]

        client = httpx.Client(transport=prometheus_transport(respond))
        check(targets(), client=client, **kwargs)
    return sent


@pytest.mark.parametrize(
    ("check", "kwargs"),
    [
        (prometheus.check_error_ratio, {}),
        (prometheus.check_latency_quantile, {"quantile": 0.99}),
        (prometheus.check_up, {}),
        (prometheus.check_errors_by_route, {}),
        (prometheus.check_slowest_routes, {"window": "1m"}),
        (prometheus.check_route_error_ratio, {}),
        (prometheus.check_cache_hit_ratio, {}),
        (postgres.check_service_pool, {}),
        (postgres.check_exporter, {}),
        (redis.check_eviction_rate, {}),
        (upstream.check_upstream_errors, {}),
        (upstream.check_circuit_breaker, {}),
        (upstream.check_fallback_share, {}),
        (upstream.check_upstream_latency, {}),
        (upstream.check_latency_source, {}),
        (flags.check_rollout, {"skill": "summarise-v2"}),
        (costs.check_cost_per_call, {}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_the_promql_shown_is_what_the_check_sends(check: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    sent = sent_queries(check, **kwargs)
    shown = [m.text for m in manuals(check, targets(), kwargs) or () if m.kind == "promql"]
    assert shown
    for promql in shown:
        # a ratio of two queries the check sends (the check divides them itself) reads as one
        parts = [promql] if promql in sent else promql.split(" / ")
        assert all(part in sent for part in parts), f"{promql!r} is not what {check.__name__} sends: {sent}"


# --------------------------------------------------------------------------- defaults and arguments


def test_the_checks_own_defaults_are_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    (shown,) = manuals(prometheus.check_latency_quantile, production()) or []
    assert shown.text.startswith("histogram_quantile(0.95, ")
    assert "WARN from 2 s" in shown.note
    defaults = {**(prometheus.check_latency_quantile.__kwdefaults__ or {}), "quantile": 0.99, "warn_s": 3.5}
    monkeypatch.setattr(prometheus.check_latency_quantile, "__kwdefaults__", defaults)
    (shown,) = manuals(prometheus.check_latency_quantile, production()) or []
    assert shown.text.startswith("histogram_quantile(0.99, ")
    assert "WARN from 3.5 s" in shown.note


def test_a_default_of_a_check_of_the_database_reaches_its_sql(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = {**(postgres.check_long_running_queries.__kwdefaults__ or {}), "warn_s": 12.0}
    monkeypatch.setattr(postgres.check_long_running_queries, "__kwdefaults__", defaults)
    (shown,) = manuals(postgres.check_long_running_queries, production()) or []
    assert "make_interval(secs => 12)" in shown.text


def test_given_arguments_win_over_defaults_and_positional_ones_bind_by_position() -> None:
    (shown,) = manuals(postgres.check_idle_in_transaction, production(), {"older_than_s": 5}) or []
    assert "make_interval(secs => 5)" in shown.text
    assert "%(" not in shown.text
    (up,) = manuals(prometheus.check_up, production(), positional=["postgres"]) or []
    assert up.text == 'up{job="postgres"}'


def test_a_signal_the_environment_does_not_export_is_said_not_run() -> None:
    stock = targets(signals=Targets.from_env("stock", declared_only=True).signals)
    (shown,) = manuals(prometheus.check_cache_hit_ratio, stock) or []
    assert shown.kind == "none"
    assert "cache_requests" in shown.note


# --------------------------------------------------------------------------- command lines


@pytest.fixture
def recorder(tmp_path: Path) -> Callable[[str], list[dict[str, Any]]]:
    """Run a command line with fake curl, psql and redis-cli that record what they were given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.jsonl"
    script = (
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"with open({str(calls)!r}, 'a') as f:\n"
        "    stdin = '' if sys.stdin.isatty() else sys.stdin.read()\n"
        "    env = {k: os.environ.get(k) for k in ('PGPASSWORD', 'REDISCLI_AUTH')}\n"
        "    f.write(json.dumps({'argv': sys.argv, 'stdin': stdin, 'env': env}) + '\\n')\n"
    )
    for name in ("curl", "psql", "redis-cli"):
        tool = bin_dir / name
        tool.write_text(script, encoding="utf-8")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)

    def run(command: str) -> list[dict[str, Any]]:
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        subprocess.run(["bash", "-c", command], env=env, check=True, stdin=subprocess.DEVNULL, timeout=30)
        lines = calls.read_text(encoding="utf-8").splitlines()
        calls.unlink()
        return [json.loads(line) for line in lines]

    return run


def test_a_query_reaches_curl_as_written_quotes_and_all(recorder: Callable[[str], list[Any]]) -> None:
    promql = """sum(rate(x{route=~"/api/.*", user="o'brien"}[5m])) / 2 $HOME `id`"""
    (call,) = recorder(shell(production(), Manual("promql", promql)))
    assert call["argv"][1:] == [
        "-sG",
        "https://prometheus.example.internal/api/v1/query",
        "--data-urlencode",
        f"query={promql}",
    ]


def test_a_statement_reaches_psql_as_written_and_the_password_by_its_variable(
    recorder: Callable[[str], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "pw-Ex4mple-do-not-print"
    monkeypatch.setenv("DRILLBOOK_PRODUCTION_PGPASSWORD", secret)
    holders, _ = manuals(postgres.check_connections, production()) or []
    line = shell(production(), holders)
    assert secret not in line
    assert 'PGPASSWORD="$DRILLBOOK_PRODUCTION_PGPASSWORD" psql ' in line
    (call,) = recorder(line)
    assert call["argv"][1:] == ["postgresql://runbook@db.example.internal:5432/app?sslmode=require"]
    assert call["stdin"] == holders.text + "\n"  # a here-document, as written, quotes and all
    assert call["env"]["PGPASSWORD"] == secret  # read from the variable when it runs
    (one,) = recorder(shell(production(), Manual("sql", "SELECT 1")))
    assert one["argv"][2:] == ["-c", "SELECT 1"]


def test_redis_words_are_quoted_for_the_shell(
    recorder: Callable[[str], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "redis-Ex4mple-do-not-print"
    monkeypatch.setenv("DRILLBOOK_PRODUCTION_REDIS_PASSWORD", secret)
    scan, _ = manuals(redis.check_ttls, production(), {"pattern": "cache:*:it's"}) or []
    line = shell(production(), scan)
    assert secret not in line
    (call,) = recorder(line)
    assert call["argv"][1:] == [
        "-u",
        "rediss://cache.example.internal:6380/0",
        *["SCAN", "0", "MATCH", "cache:*:it's", "COUNT", "200"],
    ]
    assert call["env"]["REDISCLI_AUTH"] == secret


def test_a_health_request_waits_as_long_as_the_check(recorder: Callable[[str], list[Any]]) -> None:
    (health,) = manuals(http.check_health, production(), {"timeout_s": 2.5}) or []
    (call,) = recorder(shell(production(), health))
    assert call["argv"][1:] == ["-sS", "-i", "-m", "2.5", "https://api.example.internal/health"]


def test_an_endpoint_not_known_here_is_read_from_a_variable(recorder: Callable[[str], list[Any]]) -> None:
    sandbox = Targets.from_env("sandbox", declared_only=True)  # no running sandbox needed
    (health,) = manuals(http.check_health, sandbox) or []
    assert health.text == "$SERVICE_URL/health"
    line = shell(sandbox, health)
    assert line.endswith('"$SERVICE_URL"/health')
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SERVICE_URL", "http://127.0.0.1:9 x")
        (call,) = recorder(line)
    assert call["argv"][-1] == "http://127.0.0.1:9 x/health"
    assert shell(sandbox, Manual("sql", "SELECT 1")) == "psql \"$DATABASE_URL\" -c 'SELECT 1'"


def test_a_password_in_a_dsn_is_masked_in_the_command_line() -> None:
    leaky = targets(postgres="postgresql://app:hunter22-example@db:5432/app")
    line = shell(leaky, Manual("sql", "SELECT 1"))
    assert "hunter22-example" not in line
    assert shlex.split(line)[1] == "postgresql://app:***@db:5432/app"


def test_nothing_to_run_has_no_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(upstream.STATUS_PAGE_VARIABLE, raising=False)
    (note,) = manuals(upstream.check_status_page, production(), {"url": None}) or []
    assert note.kind == "none"
    assert shell(production(), note) == ""
