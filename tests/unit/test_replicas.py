"""Sandbox replicas (one per parallel test worker) and how the tests are shared out among workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox import SERVICES, replica_dir
from sandbox._ports import LISTENERS, pick_port, pick_ports
from tests.scheduling import scope_of


def sandbox_cli(*args: str, folder: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DRILLBOOK_SANDBOX_DIR=str(folder))
    env.pop("DRILLBOOK_SANDBOX_STATE", None)
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args, "--driver", "native"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_replica_zero_is_the_sandbox_directory_and_the_others_its_numbered_siblings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRILLBOOK_SANDBOX_DIR", str(tmp_path / "sbx"))
    assert replica_dir(0) == tmp_path / "sbx"
    assert replica_dir(2) == tmp_path / "sbx-2"
    with pytest.raises(ValueError, match="0 or more"):
        replica_dir(-1)


def test_status_on_replicas_asks_each_one_and_labels_its_lines(tmp_path: Path) -> None:
    done = sandbox_cli("status", "--replicas", "3", folder=tmp_path / "sbx")
    assert done.returncode == 3  # none of them runs
    states = {tuple(line.split()) for line in done.stdout.splitlines()}
    for index in range(3):
        assert ("replica", f"{index}:", "postgres", "stopped") in states, done.stdout
    assert len(done.stdout.splitlines()) == 3 * len(SERVICES)


def test_down_on_replicas_that_do_not_run_is_fine(tmp_path: Path) -> None:
    done = sandbox_cli("down", "--replicas", "2", folder=tmp_path / "sbx")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("count", ["0", "-1", "two"])
def test_a_replica_count_that_is_not_a_positive_whole_number_is_refused(tmp_path: Path, count: str) -> None:
    done = sandbox_cli("up", "--replicas", count, folder=tmp_path / "sbx")
    assert done.returncode == 2
    assert f"the number of sandboxes is 1 or more, not {count!r}" in done.stderr


@pytest.mark.parametrize(
    ("nodeid", "scope"),
    [
        ("notebooks/service-down.py::service-down", "runbooks"),
        ("notebooks/cost-spike.py::cost-spike", "runbooks"),
        (
            "tests/drills/test_resilience.py::test_every_runbook_reports[redis]",
            "tests/drills/test_resilience.py::test_every_runbook_reports[redis]",
        ),
        ("tests/integration/test_faults.py::test_cache_cold", "tests/integration/test_faults.py"),
        ("tests/unit/test_gate.py::test_healthy_evidence_skips_the_action", "tests/unit/test_gate.py"),
    ],
)
def test_notebooks_share_one_worker_drills_go_alone_and_modules_stay_whole(nodeid: str, scope: str) -> None:
    assert scope_of(nodeid) == scope


def test_sandboxes_starting_together_never_pick_the_same_ports(tmp_path: Path) -> None:
    ledger = tmp_path / "ports.json"
    picks = [pick_ports(ledger) for _ in range(4)]
    every = [port for ports in picks for port in ports.values()]
    assert len(every) == len(set(every)) == 4 * len(LISTENERS)
    held = json.loads(ledger.read_text(encoding="utf-8"))
    assert set(map(int, held)) == set(every)


def test_a_port_picked_for_a_server_beside_the_sandboxes_is_held_from_them(tmp_path: Path) -> None:
    ledger = tmp_path / "ports.json"
    served = pick_port(ledger)
    assert int(next(iter(json.loads(ledger.read_text(encoding="utf-8"))))) == served
    assert all(served not in pick_ports(ledger).values() for _ in range(4))


def test_expired_ports_leave_the_ledger_and_a_damaged_ledger_is_rebuilt(tmp_path: Path) -> None:
    ledger = tmp_path / "ports.json"
    ledger.write_text(json.dumps({"1": time.time() - 1}), encoding="utf-8")
    ports = pick_ports(ledger)
    assert set(map(int, json.loads(ledger.read_text(encoding="utf-8")))) == set(ports.values())
    ledger.write_text("{not json", encoding="utf-8")
    again = pick_ports(ledger)
    assert set(map(int, json.loads(ledger.read_text(encoding="utf-8")))) == set(again.values())
