"""The Signals page: every signal checks read, its default, and each environment's mapping of it.

Rendered from `checks.signals.DEFAULTS` and policy/environments.yml, so the page never drifts
from what the checks query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from checks.signals import DEFAULTS, Signal, Signals
from checks.targets import CAPABILITIES, SETTINGS

from ._common import escape, table


def _shown(signal: Signal) -> str:
    if signal.metric is None:
        return "*not exported*"
    labels = ", ".join(f"{role}: `{label}`" for role, label in signal.labels.items())
    values = ", ".join(f"{role} = `{value}`" for role, value in signal.values.items())
    text = f"`{signal.metric}`"
    if labels:
        text += f"<br>labels: {labels}"
    if values:
        text += f"<br>values: {values}"
    return text


def render_signals() -> str:
    """One row per signal: what it is, its kind, the service whose job scopes it, its default."""
    rows = [
        (f"`{name}`", escape(s.description), s.kind, s.service, _shown(s)) for name, s in DEFAULTS.items()
    ]
    header = ("Signal", "What it is", "Kind", "Job of", "Default")
    return table(header, rows, attrs='class="drillbook-table drillbook-signals"')


def render_needs() -> str:
    """The capabilities and settings an environment declares, and a runbook may list as needs."""
    rows = [(f"`{name}`", "capability", escape(text)) for name, text in CAPABILITIES.items()]
    rows += [(f"`{name}`", "setting", escape(text)) for name, text in SETTINGS.items()]
    return table(("Name", "Kind", "What it is"), rows, attrs='class="drillbook-table"')


def render_signal_mappings(environments: Mapping[str, Mapping[str, Any]]) -> str:
    """Per environment, the signals it maps away from their defaults, and to what."""
    sections = []
    for env, spec in environments.items():
        signals = Signals.from_policy(spec.get("signals"))
        rows = [(f"`{n}`", _shown(signals[n])) for n, default in DEFAULTS.items() if signals[n] != default]
        body = table(("Signal", "Here"), rows) if rows else "\nEvery signal at its default.\n"
        sections.append(f"### `{env}`\n{body}")
    return "\n".join(sections)
