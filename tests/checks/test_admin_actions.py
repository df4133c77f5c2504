"""Mitigations through the real admin API: plans say from what to what, and applying twice is safe."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from checks import Gate, Targets
from checks.reference_service import admin
from checks.reference_service.admin import admin_state

pytestmark = pytest.mark.sandbox


@pytest.fixture
def restore(runbook_targets: Targets) -> Iterator[dict[str, object]]:
    """Put the service's switches back as they were, whatever the test changed."""
    before = admin_state(runbook_targets)
    yield before
    apply = Gate.for_targets(runbook_targets, apply=True)
    apply.run(admin.set_rollout_percentage(runbook_targets, before["rollout_percentage"]))
    apply.run(admin.close_circuit_breaker(runbook_targets))
    apply.run(admin.set_cache_ttl(runbook_targets, before["cache_ttl_seconds"]))
    for name, skill in before["skills"].items():
        apply.run(admin.set_max_tokens(runbook_targets, name, skill["max_tokens"]))
        apply.run((admin.enable_skill if skill["enabled"] else admin.disable_skill)(runbook_targets, name))


def test_rollout_plan_names_the_current_and_the_new_value_and_apply_is_idempotent(
    runbook_targets: Targets, restore: dict[str, object]
) -> None:
    current = restore["rollout_percentage"]
    action = admin.set_rollout_percentage(runbook_targets, 0)

    planned = Gate.for_targets(runbook_targets).run(action)
    assert planned.plan.changes == (f"skill rollout percentage → 0 (now {current!r})",)
    assert admin_state(runbook_targets)["rollout_percentage"] == current

    first = Gate.for_targets(runbook_targets, apply=True).run(action)
    assert admin_state(runbook_targets)["rollout_percentage"] == 0
    assert current != 0, "the sandbox starts with the flag above 0"
    assert (first.state, first.before, first.after) == ("changed", current, 0)
    again = Gate.for_targets(runbook_targets, apply=True).run(action)
    assert '"before": 0, "after": 0' in again.detail
    assert (again.state, again.before, again.after) == ("unchanged", 0, 0)
    assert action.plan().changes == ("skill rollout percentage → 0 (already 0: no change)",)


def test_skill_switches_and_max_tokens_change_the_service(
    runbook_targets: Targets, restore: dict[str, object]
) -> None:
    skill = next(iter(restore["skills"]))  # type: ignore[call-overload]
    apply = Gate.for_targets(runbook_targets, apply=True)
    apply.run(admin.disable_skill(runbook_targets, skill))
    apply.run(admin.set_max_tokens(runbook_targets, skill, 321))
    state = admin_state(runbook_targets)["skills"][skill]
    assert state == {"enabled": False, "max_tokens": 321}


def test_circuit_breaker_can_be_forced_open_and_released(
    runbook_targets: Targets, restore: dict[str, object]
) -> None:
    apply = Gate.for_targets(runbook_targets, apply=True)
    apply.run(admin.open_circuit_breaker(runbook_targets))
    assert admin_state(runbook_targets)["circuit"]["forced"] is True
    health = httpx.get(runbook_targets.endpoint("api") + "/health", timeout=5).json()
    assert health["circuit"]["state"] == "open"
    apply.run(admin.close_circuit_breaker(runbook_targets))
    assert admin_state(runbook_targets)["circuit"]["forced"] is False


def test_a_wrong_admin_token_fails_loudly_and_changes_nothing(runbook_targets: Targets) -> None:
    before = admin_state(runbook_targets)["rollout_percentage"]
    wrong = replace(runbook_targets, local_secrets={"admin_token": "not-the-token"})
    outcome = Gate.for_targets(wrong, apply=True).run(admin.set_rollout_percentage(wrong, 7))
    assert outcome.state == "failed"
    assert "admin token was refused" in outcome.reason
    assert admin_state(runbook_targets)["rollout_percentage"] == before
