"""checks: the diagnostics and mitigations that runbook notebooks call.

Probes return `CheckResult`s (and never crash on a dead dependency: they
report it); mitigations are `Action`s applied only through a `Gate`.

Names load on first use, so a runbook that only talks HTTP never pays for the
database or Redis drivers: `from checks import http` imports httpx and no more.

The modules here are generic: any service, any PostgreSQL, Redis or Prometheus, read
through the signals and capabilities an environment declares. What only the sandbox's
reference service has (its admin API, its tables, its own metrics) lives apart, in
`checks.reference_service`.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from checks._errors import (
    ActionError,
    ActionFailed,
    CheckError,
    CheckFailed,
    ConfigError,
    ProbeError,
    UnreadableFile,
)
from checks._result import (
    ACTION_MIME,
    RESULT_MIME,
    SEVERITY_MIME,
    STOPPING_STATES,
    CheckResult,
    OutcomeState,
    Status,
    observed_change,
)

if TYPE_CHECKING:
    from checks import (
        actions,
        by_hand,
        cache,
        deploy,
        http,
        postgres,
        prometheus,
        redis,
        sessions,
        severity,
        signals,
    )
    from checks._files import read_utf8
    from checks._policy import (
        POLICY_DIR_VARIABLE,
        EscalationPolicy,
        Level,
        SeverityPolicy,
        format_duration,
        load_document,
        load_environments,
        load_escalation,
        load_severity,
        parse_duration,
        policy_dir,
    )
    from checks._wait import wait_until_ok
    from checks.actions import Action, Effect, Gate, Outcome, Plan, restart_service
    from checks.sessions import terminate_blockers, terminate_idle_transactions
    from checks.severity import Classification, classify, escalation_at, summarize
    from checks.targets import Targets

_MODULES = (
    "actions",
    "by_hand",
    "cache",
    "deploy",
    "http",
    "postgres",
    "prometheus",
    "redis",
    "sessions",
    "severity",
    "signals",
)
_HOMES = {
    "checks._policy": (
        "POLICY_DIR_VARIABLE EscalationPolicy Level SeverityPolicy format_duration load_document "
        "load_environments load_escalation load_severity parse_duration policy_dir"
    ),
    "checks._files": "read_utf8",
    "checks._wait": "wait_until_ok",
    "checks.actions": "Action Effect Gate Outcome Plan restart_service",
    "checks.sessions": "terminate_blockers terminate_idle_transactions",
    "checks.severity": "Classification classify escalation_at summarize",
    "checks.targets": "Targets",
}
_LAZY = {name: module for module, names in _HOMES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    if name in _MODULES or (not name.startswith("_") and importlib.util.find_spec(f"checks.{name}")):
        return importlib.import_module(f"checks.{name}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'checks' has no attribute {name!r}")


__all__ = [
    "ACTION_MIME",
    "POLICY_DIR_VARIABLE",
    "RESULT_MIME",
    "SEVERITY_MIME",
    "STOPPING_STATES",
    "Action",
    "ActionError",
    "ActionFailed",
    "CheckError",
    "CheckFailed",
    "CheckResult",
    "Classification",
    "ConfigError",
    "Effect",
    "EscalationPolicy",
    "Gate",
    "Level",
    "Outcome",
    "OutcomeState",
    "Plan",
    "ProbeError",
    "SeverityPolicy",
    "Status",
    "Targets",
    "UnreadableFile",
    "actions",
    "by_hand",
    "cache",
    "classify",
    "deploy",
    "escalation_at",
    "format_duration",
    "http",
    "load_document",
    "load_environments",
    "load_escalation",
    "load_severity",
    "observed_change",
    "parse_duration",
    "policy_dir",
    "postgres",
    "prometheus",
    "read_utf8",
    "redis",
    "restart_service",
    "sessions",
    "severity",
    "signals",
    "summarize",
    "terminate_blockers",
    "terminate_idle_transactions",
    "wait_until_ok",
]
