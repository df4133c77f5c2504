"""From a fault to a triage in the chat, through the sandbox's real Prometheus and Alertmanager
and `drillbook receive`: the runbook the alert names runs by itself, in dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drillbook.receiver import read_timeline
from sandbox import Driver
from sandbox.faults import Injector
from tests.receiver.support import REPO, chat_service, project_with_chat, receiving, wait_until_quiet

pytestmark = pytest.mark.sandbox


def test_a_fault_pages_and_the_runbook_diagnoses_it_and_the_chat_gets_the_triage(
    sandbox: Driver, tmp_path: Path
) -> None:
    records = tmp_path / "incidents"
    policy = project_with_chat(tmp_path / "project")
    faults = Injector.attach(sandbox)
    wait_until_quiet("HighErrorRate")
    with chat_service() as chat, receiving(policy, records, chat):
        faults.inject("error-burst")
        try:
            message = chat.wait_for("high-error-rate in sandbox", timeout_s=120)
        finally:
            faults.clear("error-burst")

    text = json.dumps(message)
    assert "https://runbooks.example.internal/runbooks/high-error-rate/" in text  # the runbook link
    assert "error_ratio_above" in text  # the severity with the trigger that decided it
    assert "drillbook run high-error-rate --env sandbox --apply" in text  # how to apply the plan

    [record_path] = records.glob("alert-higherrorrate-*/high-error-rate-sandbox-*.json")
    record = json.loads(record_path.read_text(encoding="utf-8"))
    assert record["incident"] == record_path.parent.name
    assert record["parameters"]["apply"] is False  # it never applies
    crit = {r["name"] for cell in record["cells"] for r in cell.get("results", []) if r["status"] == "CRIT"}
    assert "error-ratio" in crit  # the cause, seen
    assert not [a for cell in record["cells"] for a in cell.get("actions", []) if a["state"] == "changed"]

    incident = record_path.parent.name
    events = [e["event"] for e in read_timeline(records, incident)]
    assert {"alert firing", "run started", "run ended", "triage sent"} <= set(events)
    assert events.index("alert firing") < events.index("run started") < events.index("triage sent")

    draft = tmp_path / "postmortem.md"
    done = subprocess.run(
        [sys.executable, "-m", "drillbook", "incident", "new", "--title", "Error burst", "--level", "SEV2",
         "--incident", incident, "--records", str(records), "--out", str(draft)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    timeline = draft.read_text(encoding="utf-8")
    assert "alert HighErrorRate fires" in timeline
    assert "runs the high-error-rate runbook" in timeline
    assert "triage sent to oncall-chat" in timeline
