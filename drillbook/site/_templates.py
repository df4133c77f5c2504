"""Communication templates: the placeholders they may use and the form that fills them in the browser.

Templates are code blocks on pages under `docs/templates/`, with placeholders
written `[[name]]`. Every name must be declared in `docs/templates/placeholders.yml`
(a list of `{name, label, description, kind}`; `kind` is `form` for the fields of
the form, `computed` for values the page derives from the chosen severity, and
`manual` for what the writer fills in by hand). An undeclared name fails the build.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from checks import SeverityPolicy

from ._common import SiteError
from ._policy import render_policy_data

PLACEHOLDER = re.compile(r"\[\[([A-Za-z0-9_]+)\]\]")
KINDS = ("form", "computed", "manual")


@dataclass(frozen=True, slots=True)
class Placeholder:
    name: str
    label: str
    description: str
    kind: str


def read_placeholders(path: Path) -> tuple[Placeholder, ...]:
    """The declared placeholders, validated: names unique, every field present."""
    if not path.is_file():
        raise SiteError(f"{path}: missing; it declares the [[placeholders]] that templates may use")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SiteError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, list):
        raise SiteError(f"{path}: expected a list of {{name, label, description}}")
    seen: set[str] = set()
    placeholders = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or not all(entry.get(k) for k in ("name", "label", "description")):
            raise SiteError(f"{path}: entry {index + 1} needs a name, a label and a description")
        name = str(entry["name"])
        kind = str(entry.get("kind", "manual"))
        if not PLACEHOLDER.fullmatch(f"[[{name}]]"):
            raise SiteError(f"{path}: placeholder name {name!r} may use only letters, digits and _")
        if kind not in KINDS:
            raise SiteError(f"{path}: placeholder {name!r} has kind {kind!r}; use one of {', '.join(KINDS)}")
        if name in seen:
            raise SiteError(f"{path}: placeholder {name!r} is declared twice")
        seen.add(name)
        placeholders.append(Placeholder(name, str(entry["label"]), str(entry["description"]), kind))
    return tuple(placeholders)


def check_placeholders(page: Path, text: str, declared: Sequence[Placeholder]) -> tuple[str, ...]:
    """The placeholder names `text` uses; raise naming any that is not declared."""
    used = tuple(dict.fromkeys(PLACEHOLDER.findall(text)))
    known = {p.name for p in declared}
    unknown = [name for name in used if name not in known]
    if unknown:
        raise SiteError(
            f"{page}: undeclared placeholders {', '.join(f'[[{n}]]' for n in unknown)}; "
            "declare them in docs/templates/placeholders.yml"
        )
    return used


def render_template_form(placeholders: Sequence[Placeholder], policy: SeverityPolicy) -> str:
    """The form that fills every template of the page in the browser (docs/assets/javascripts)."""
    fields = []
    for p in placeholders:
        if p.kind != "form":
            continue
        label = html.escape(p.label)
        hint = html.escape(p.description)
        ident = f"drillbook-field-{p.name}"
        if p.name == "severity":
            options = ['<option value="">choose a level</option>'] + [
                f'<option value="{level.id}">{html.escape(level.label)} — {html.escape(level.name)}</option>'
                for level in policy.levels
            ]
            control = f'<select id="{ident}" name="{p.name}">{"".join(options)}</select>'
        elif p.name.endswith("_time"):
            control = f'<input id="{ident}" name="{p.name}" type="datetime-local" title="{hint}">'
        else:
            control = f'<input id="{ident}" name="{p.name}" type="text" placeholder="{hint}">'
        fields.append(f'<label for="{ident}">{label}</label>{control}')
    computed = [
        f'<dt>{html.escape(p.label)}</dt><dd data-placeholder="{p.name}">[[{p.name}]]</dd>'
        for p in placeholders
        if p.kind == "computed"
    ]
    return (
        "\n"
        + render_policy_data(policy)
        + '<form class="drillbook-template-form" id="drillbook-template-form" autocomplete="off">'
        + '<div class="drillbook-fields">'
        + "".join(fields)
        + "</div>"
        + '<dl class="drillbook-computed">'
        + "".join(computed)
        + "</dl>"
        + '<p class="drillbook-muted">Times are UTC. Nothing leaves this page: the form fills the '
        + "templates below in your browser. Empty fields leave their placeholders in place.</p>"
        + '<button type="reset" class="md-button">Clear</button>'
        + "</form>\n"
    )


def render_placeholder_table(placeholders: Sequence[Placeholder]) -> str:
    rows = "\n".join(f"| `[[{p.name}]]` | {p.label} | {p.kind} | {p.description} |" for p in placeholders)
    return "\n| Placeholder | Label | Filled by | Meaning |\n| --- | --- | --- | --- |\n" + rows + "\n"
