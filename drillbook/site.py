"""The site's macros: policy tables, templates, the runbook catalogue, alerts and runbook steps.

`docs/overrides/macros.py` re-exports `define_env` and `on_post_build`, which
mkdocs-macros calls once per build. Pages opt in to rendering with
`render_macros: true` in their front matter (runbooks quote Prometheus templates
such as `{{ $labels.instance }}` that Jinja must not touch). The macros:

- `severity_matrix()`, `severity_decision()`, `severity_target(level, field)`;
- `escalation_table(level=None)`, `escalation_by_elapsed()`, `escalation_ladders()`,
  `escalation_contacts()`;
- `template_form()`, `placeholder_table()`: the templates page and its form;
- `runbook_catalogue()`, `alert_rules()`, `print_runbooks()`;
- `runbook_steps(slug, tag)`: the code cells of `notebooks/<slug>.py` tagged
  `tag`, each with its explanation and, when `build/executed/<slug>.ipynb`
  exists, the output of that run; the first call on a page adds the badge
  (verified when, drills passed in how long).

After the build, `on_post_build` writes `runbooks.json` at the site root.

Every path resolves from the directory that holds mkdocs.yml, never from the
working directory; the policy files come from `$DRILLBOOK_POLICY_DIR` when it is
set. Anything a macro cannot render raises `SiteError` naming the file and what
it expected, and mkdocs-macros (`on_error_fail: true`) fails the build.

The `render_*` functions are plain functions of their inputs, usable and
testable without mkdocs.
"""

from drillbook._site import (
    DEFAULT_ALERT_RULES,
    INDEX_FILE,
    OUTPUT_TITLE,
    PLACEHOLDER,
    POLICY_DATA_ID,
    SEVERITY_FIELDS,
    TODAY_VARIABLE,
    AlertLink,
    AlertRule,
    DrillResult,
    Placeholder,
    RunbookPage,
    SiteError,
    SitePaths,
    Verification,
    check_placeholders,
    define_env,
    escalation_mermaid,
    link_alerts,
    on_post_build,
    policy_data,
    read_alert_rules,
    read_drills,
    read_placeholders,
    read_runbook_pages,
    read_verification,
    render_alerts_table,
    render_badge,
    render_escalation_by_elapsed,
    render_escalation_contacts,
    render_escalation_ladders,
    render_escalation_table,
    render_print_body,
    render_runbook_catalogue,
    render_runbook_steps,
    render_severity_decision,
    render_severity_matrix,
    render_severity_target,
    runbook_index,
)

__all__ = [
    "DEFAULT_ALERT_RULES",
    "INDEX_FILE",
    "OUTPUT_TITLE",
    "PLACEHOLDER",
    "POLICY_DATA_ID",
    "SEVERITY_FIELDS",
    "TODAY_VARIABLE",
    "AlertLink",
    "AlertRule",
    "DrillResult",
    "Placeholder",
    "RunbookPage",
    "SiteError",
    "SitePaths",
    "Verification",
    "check_placeholders",
    "define_env",
    "escalation_mermaid",
    "link_alerts",
    "on_post_build",
    "policy_data",
    "read_alert_rules",
    "read_drills",
    "read_placeholders",
    "read_runbook_pages",
    "read_verification",
    "render_alerts_table",
    "render_badge",
    "render_escalation_by_elapsed",
    "render_escalation_contacts",
    "render_escalation_ladders",
    "render_escalation_table",
    "render_print_body",
    "render_runbook_catalogue",
    "render_runbook_steps",
    "render_severity_decision",
    "render_severity_matrix",
    "render_severity_target",
    "runbook_index",
]
