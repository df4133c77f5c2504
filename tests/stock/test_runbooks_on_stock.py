"""Every runbook on a stack it was not written for: the stock stack (sandbox/stock).

Healthy, no runbook reports a finding: what the stack cannot answer (the reference service's
admin API, tables and own metrics) is "not applicable here", never a finding or an error. Each
fault made with generic means (the service stopped, a held lock, Redis full under noeviction,
slow responses) is reported CRIT by the runbook for it, whose generic mitigation fixes it,
while every step that needs what the stack lacks is skipped and says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from checks import Status, Targets, http, prometheus, redis
from checks.signals import DEFAULTS
from drillbook.runner import Runbook, RunRecord, execute, project_root, write_outputs
from sandbox import stock
from tests.drills.waiting import wait_for, wait_for_window_after

pytestmark = pytest.mark.sandbox

# What a step may say when it did not act on the stock stack.
NOT_HERE = ("not applicable here", "skipped: could not observe", "no change needed")


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """Where the stock stack runs for this module (DRILLBOOK_STOCK_DIR names it meanwhile)."""
    path = Path(tempfile.mkdtemp(prefix="drillbook-stock-runbooks-"))
    path.chmod(0o755)  # as root, PostgreSQL runs as the postgres OS user and must reach it
    try:
        with stock.running(path):
            yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def targets(folder: Path) -> Targets:
    return Targets.from_env("stock")


def test_healthy_the_stock_stack_gives_no_runbook_a_finding(folder: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "diagnose", "--env", "stock", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(Runbook.all()), done.stdout
    for line in lines:
        assert line.startswith("✔"), line
        assert not {"CRIT", "WARN", "UNKNOWN"} & set(line.split()), line


def _run(slug: str, fault: str) -> RunRecord:
    execution = execute(Runbook.find(slug), parameters={"env": "stock", "apply": True})
    write_outputs(execution, project_root() / "build" / "stock", stem=f"{slug}--{fault}")
    record = execution.record
    assert record.status == "ok", record.error
    return record


def _acted_only_on(record: RunRecord, action: str) -> None:
    """`action` changed the stack; every other step did not, and says why."""
    changed = [a["action"] for a in record.actions if a["state"] == "changed"]
    assert changed == [action], [(a["action"], a["state"], a["reason"]) for a in record.actions]
    for step in record.actions:
        if step["action"] != action:
            assert step["state"] in ("skipped", "unchanged"), step
            assert step["reason"].startswith(NOT_HERE), step
    for result in record.results("verify"):
        assert result.status in (Status.OK, Status.NOT_APPLICABLE), str(result)


def _crit(record: RunRecord, name: str) -> None:
    diagnosis = {r.name: r for r in record.results("diagnosis")}
    assert diagnosis[name].status is Status.CRIT, str(diagnosis[name])


def test_a_stopped_service_is_seen_and_restarted(folder: Path, targets: Targets) -> None:
    with stock.faults(folder).injected("orders-down"):
        record = _run("service-down", "orders-down")
    _crit(record, "listening")
    _acted_only_on(record, "restart service")
    assert http.check_health(targets).ok


def test_a_held_lock_is_seen_and_its_holder_terminated(folder: Path, targets: Targets) -> None:
    with stock.faults(folder).injected("orders-table-locked"):
        wait_for(lambda: _blocked(targets), timeout_s=30, what="requests to wait on the migration's lock")
        record = _run("database-connections", "orders-table-locked")
    _crit(record, "blocked-queries")
    _acted_only_on(record, "terminate lock blockers")


def _blocked(targets: Targets) -> bool:
    from checks import postgres

    return postgres.check_blocked_queries(targets).status is Status.CRIT


def test_redis_full_under_noeviction_gets_more_memory(folder: Path, targets: Targets) -> None:
    with stock.faults(folder).injected("redis-full"):
        record = _run("cache-degradation", "redis-full")
        _crit(record, "cache-memory")
        _acted_only_on(record, "raise Redis maxmemory")
        assert redis.check_memory(targets).ok


def test_slow_responses_are_traced_to_the_service_and_restarted(folder: Path, targets: Targets) -> None:
    with stock.faults(folder).injected("orders-slow"):
        wait_for_window_after(targets, time.time(), what="the orders service turned slow")
        wait_for(
            lambda: prometheus.check_latency_quantile(targets).status.problem,
            timeout_s=30,
            what="Prometheus to see slow requests",
        )
        record = _run("slow-responses", "orders-slow")
    _crit(record, "latency-source")
    _acted_only_on(record, "restart service")


def test_what_a_step_cannot_apply_without_is_what_its_runbook_says_it_needs(
    folder: Path, tmp_path: Path
) -> None:
    """On an environment with nothing but endpoints (no capability, no signal), every step that
    does not apply names a need its runbook's page declares under `needs`."""
    policy = tmp_path / "policy"
    shutil.copytree(project_root() / "policy", policy)
    document = yaml.safe_load((policy / "environments.yml").read_text(encoding="utf-8"))
    bare = {**document["environments"]["stock"], "signals": dict.fromkeys(DEFAULTS)}
    document["environments"]["bare"] = bare
    (policy / "environments.yml").write_text(yaml.safe_dump(document), encoding="utf-8")
    books = [str(book.notebook) for book in Runbook.all()]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "drillbook",
            "diagnose",
            "--env",
            "bare",
            "--out",
            str(tmp_path / "out"),
            *books,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "DRILLBOOK_POLICY_DIR": str(policy)},
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for book in Runbook.all():
        page = project_root() / "docs" / "runbooks" / f"{book.slug}.md"
        declared = set(yaml.safe_load(page.read_text(encoding="utf-8").split("---")[1]).get("needs", []))
        record = json.loads((tmp_path / "out" / f"{book.slug}.json").read_text(encoding="utf-8"))
        for cell in record["cells"]:
            for result in cell["results"]:
                if result["status"] == "N/A":
                    assert set(result["evidence"]["needs"]) <= declared, (book.slug, result["name"])
            for action in cell["actions"]:
                if action["state"] == "skipped":
                    named = set(re.findall(r"needs '([^']+)'", action["reason"]))
                    assert named <= declared, (book.slug, action["action"])
