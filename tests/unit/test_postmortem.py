"""The post-mortem timeline says of each mitigation what came of it, as the record does."""

from __future__ import annotations

from typing import Any

from drillbook.postmortem import timeline

STARTED = "2026-12-07T03:00:00+00:00"


def _action(name: str, state: str, before: Any = None, after: Any = None) -> dict[str, Any]:
    return {
        "action": name, "target": "api", "state": state, "before": before, "after": after,
        "finished_at": "2026-12-07T03:01:00+00:00",
    }  # fmt: skip


def test_each_mitigation_appears_with_its_state_and_what_it_observed_and_dry_runs_do_not() -> None:
    record = {
        "runbook": "service-down",
        "environment": "production",
        "operator": "oncall",
        "started_at": STARTED,
        "cells": [
            {
                "results": [],
                "actions": [
                    _action("dry run", "planned"),
                    _action("restart service", "changed"),
                    _action("set rollout percentage", "changed", 10, 0),
                    _action("set cache TTL", "unchanged", 300, 300),
                    _action("staged rollout", "held", 10, 10),
                    _action("open circuit breaker", "refused"),
                ],
            }
        ],
    }
    events = [event for _, event, _ in timeline([record])]
    assert sorted(events) == sorted(
        [
            "oncall runs the service-down runbook",
            "changed: restart service on api",
            "changed: set rollout percentage on api (10 → 0)",
            "unchanged: set cache TTL on api (300 → 300)",
            "held: staged rollout on api (10 → 10)",
            "refused: open circuit breaker on api",
        ]
    )
