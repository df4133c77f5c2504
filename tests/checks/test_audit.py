"""Audit-log verdicts and the evidence export against the sandbox's real database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from checks import Status, Targets, postgres
from checks.reference_service import audit

pytestmark = pytest.mark.sandbox


def test_customer_keys_never_touch_other_users(runbook_targets: Targets) -> None:
    result = audit.check_key_fanout(runbook_targets, since=timedelta(hours=1), min_users=2)
    assert all(key["owner_user_id"] == 41 for key in result.evidence.get("keys", []))


def test_the_seeded_support_tool_reads_many_users_over_days(runbook_targets: Targets) -> None:
    result = audit.check_key_fanout(runbook_targets, since=timedelta(days=4), min_users=20)
    assert result.status is Status.CRIT
    assert result.evidence["owner_user_id"] == 41


def test_export_writes_the_key_and_its_rows(runbook_targets: Targets, tmp_path: Path) -> None:
    key_id = postgres.aggregate(runbook_targets, "SELECT id FROM api_keys WHERE user_id = 41")[0]["id"]
    result = audit.export_evidence(runbook_targets, key_id, tmp_path / "incident")
    assert result.status is Status.OK
    document = json.loads(Path(result.evidence["path"]).read_text(encoding="utf-8"))
    assert document["key"]["id"] == key_id
    assert result.evidence["rows"] == len(document["audit_rows"]) > 0


def test_no_suspect_writes_nothing(runbook_targets: Targets, tmp_path: Path) -> None:
    assert audit.export_evidence(runbook_targets, 0, tmp_path).status is Status.OK
    assert not list(tmp_path.iterdir())


def test_an_unwritable_folder_is_crit(runbook_targets: Targets, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert audit.export_evidence(runbook_targets, 1, blocker / "sub").status is Status.CRIT
