"""Drill: a leaked integration key reads one user after another from an unknown address.
The runbook must name the key, export the evidence before containing, revoke the key,
disable its user, and see the cross-user reads stop."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checks import Status, Targets, classify, http, load_severity, postgres
from checks.reference_service import audit
from drillbook.runner import Runbook, execute, project_root, write_outputs
from sandbox import Driver
from sandbox.faults import Injector
from tests.drills.waiting import wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.drill]

ATTACKER = "203.0.113.77"  # the fault's address (sandbox/faults.yml)


def _restore(targets: Targets, key_id: int, user_id: int, since: datetime) -> None:
    """Undo the containment, so that the next drill finds the sandbox as it was."""
    with postgres.connect(targets, read_only=False) as conn:
        conn.execute("UPDATE api_keys SET revoked_at = NULL WHERE id = %s", (key_id,))
        conn.execute("UPDATE users SET disabled = false, disabled_at = NULL WHERE id = %s", (user_id,))
        conn.execute(
            "UPDATE refresh_tokens SET revoked_at = NULL WHERE user_id = %s AND revoked_at >= %s",
            (user_id, since),
        )


@pytest.mark.drill(runbook="security-incident", fault="suspicious-access")
def test_leaked_key_is_named_evidence_exported_then_contained(
    sandbox: Driver, runbook_targets: Targets, tmp_path: Path
) -> None:
    faults = Injector.attach(sandbox)
    started = datetime.now(UTC)
    faults.inject("suspicious-access")
    key_id = user_id = 0
    try:
        wait_for(
            lambda: (
                audit.check_key_fanout(runbook_targets).status is Status.CRIT
                and audit.check_cross_user_reads(runbook_targets).status is Status.CRIT
            ),
            timeout_s=20,
            what="one key to touch many users, in the audit log and in Prometheus",
        )
        execution = execute(
            Runbook.find("security-incident"),
            parameters={"env": "sandbox", "apply": True, "evidence_dir": str(tmp_path)},
        )
        write_outputs(
            execution, project_root() / "build" / "drills", stem="security-incident--suspicious-access"
        )
        record = execution.record

        assert record.status == "ok", record.error
        diagnosis = {r.name: r for r in record.results("diagnosis")}
        fanout = diagnosis["key-fanout"]
        assert fanout.status is Status.CRIT
        assert ATTACKER in fanout.evidence["addresses"]
        assert diagnosis["cross-user-reads"].status is Status.CRIT
        key_id, user_id = fanout.evidence["key_id"], fanout.evidence["owner_user_id"]
        expected = classify(record.results("diagnosis")).level
        assert expected is not None
        assert record.severity is not None
        assert record.severity["level"] == expected.id
        # A confirmed leak is the policy's level for one, whatever the graphs say.
        levels = load_severity().levels
        leak = [level.id for level in levels if "credential_leak" in level.triggers.conditions]
        assert [expected.id] == leak

        (exported,) = [r for r in record.results() if r.name == "evidence-export"]
        assert exported.status is Status.OK, exported.summary
        evidence = json.loads(Path(exported.evidence["path"]).read_text(encoding="utf-8"))
        assert evidence["key"]["id"] == key_id
        assert any(row["address"] == ATTACKER for row in evidence["audit_rows"])
        contained = [(a["action"], a["state"]) for a in record.actions]
        assert contained == [("revoke API key", "changed"), ("disable user", "changed")]
        (verified,) = record.results("verify")
        assert verified.status is Status.OK, verified.summary
    finally:
        faults.clear("suspicious-access")
        if key_id:
            _restore(runbook_targets, key_id, user_id, started)
        wait_for(
            lambda: (
                http.check_health(runbook_targets).ok and audit.check_cross_user_reads(runbook_targets).ok
            ),
            timeout_s=30,
            what="no cross-user reads after the drill",
        )
