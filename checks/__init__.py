"""checks: the diagnostics and mitigations that runbook notebooks call.

Probes return `CheckResult`s (and never crash on a dead dependency: they
report it); mitigations are `Action`s applied only through a `Gate`.
"""

from checks import http, prometheus, severity
from checks._errors import (
    ActionError,
    ActionFailed,
    ActionRefused,
    CheckError,
    CheckFailed,
    ConfigError,
    ProbeError,
)
from checks._policy import (
    POLICY_DIR_VARIABLE,
    EscalationPolicy,
    Level,
    SeverityPolicy,
    format_duration,
    load_environments,
    load_escalation,
    load_severity,
    parse_duration,
    policy_dir,
)
from checks._result import RESULT_MIME, CheckResult, Status
from checks._wait import wait_until_ok
from checks.actions import Action, Gate, Outcome, Plan, restart_service
from checks.severity import Classification, classify, escalation_at, summarize
from checks.targets import Targets

__all__ = [
    "POLICY_DIR_VARIABLE",
    "RESULT_MIME",
    "Action",
    "ActionError",
    "ActionFailed",
    "ActionRefused",
    "CheckError",
    "CheckFailed",
    "CheckResult",
    "Classification",
    "ConfigError",
    "EscalationPolicy",
    "Gate",
    "Level",
    "Outcome",
    "Plan",
    "ProbeError",
    "SeverityPolicy",
    "Status",
    "Targets",
    "classify",
    "escalation_at",
    "format_duration",
    "http",
    "load_environments",
    "load_escalation",
    "load_severity",
    "parse_duration",
    "policy_dir",
    "prometheus",
    "restart_service",
    "severity",
    "summarize",
    "wait_until_ok",
]
