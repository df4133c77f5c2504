"""Pages whose template expressions are all plain macro calls, expanded without Jinja.

mkdocs-macros compiles every page that opts in as a Jinja template, which costs more
than converting its Markdown. Runbook pages only ever call macros with literal
arguments (`{{ runbook_steps("service-down", "diagnosis") }}`), so for such a page
the calls are found with a regular expression, their arguments read as literals,
and the same registered macros called directly. A page with anything else (a
statement, a comment, a variable, a filter, an argument that is not a literal, a
macro that does not exist) gets `None` and is left to mkdocs-macros, so that
Jinja's meaning and its error messages stay the reference.

Runbooks quote Prometheus alert templates (`{{ $labels.instance }}`, `{{ end }}`) in
prose, inline code and fenced blocks. Those are never Jinja: the fast path leaves them
as written, and a page left to Jinja gets them wrapped in `{% raw %}` first, so an
author never has to know about either.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_OTHER_SYNTAX = re.compile(r"\{[%#]")
# Go template actions that stand alone, and Prometheus's template functions and actions that
# take an argument: an alert template can open with them instead of a `$` or a leading dot
# (`{{ end }}`, `{{ humanize 3.5 }}`). A lone name such as `{{ title }}` stays Jinja's.
_GO_ALONE = frozenset(("end", "else", "break", "continue"))
_GO_CALLS = frozenset((
    "range", "if", "with", "define", "template", "block", "printf", "humanize", "humanize1024",
    "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "title", "toUpper", "toLower",
    "reReplaceAll", "query", "first", "label", "value", "strvalue", "args", "safeHtml",
    "externalURL", "pathPrefix",
))  # fmt: skip


def is_alert_template(expression: str) -> bool:
    """Whether `{{ expression }}` is a Prometheus (Go) template that a runbook quotes, such as
    `{{ $labels.instance }}` or `{{ .Labels.job }}`: never a Jinja expression of this site."""
    body = expression.strip().removeprefix("-").removesuffix("-").strip()
    words = body.split()
    if "$" in body or body.startswith("."):
        return True
    return bool(words) and (
        (len(words) == 1 and words[0] in _GO_ALONE) or (len(words) > 1 and words[0] in _GO_CALLS | _GO_ALONE)
    )


def protect_alert_templates(text: str) -> str:
    """`text` with every alert template wrapped in `{% raw %}`, so that Jinja prints it as written."""
    return _EXPRESSION.sub(
        lambda m: "{% raw %}" + m.group(0) + "{% endraw %}" if is_alert_template(m.group(1)) else m.group(0),
        text,
    )


_NAMED = {"none": None, "None": None, "true": True, "True": True, "false": False, "False": False}
_NOT_LITERAL = object()


def _literal(node: ast.expr) -> Any:
    """A string, number, boolean or none, as Jinja reads it; `_NOT_LITERAL` for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float, bool, type(None))):
        return node.value
    if isinstance(node, ast.Name) and node.id in _NAMED:
        return _NAMED[node.id]
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
    ):
        number = node.operand.value
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            return -number
    return _NOT_LITERAL


Call = tuple[str, list[Any], dict[str, Any]]


def _call(expression: str, macros: Mapping[str, Callable[..., Any]]) -> Call | None:
    """Name and arguments of `name(literal, ..., key=literal)` when `expression` is exactly that."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return None
    call = tree.body
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in macros):
        return None
    args = [_literal(arg) for arg in call.args]
    kwargs = {keyword.arg: _literal(keyword.value) for keyword in call.keywords}
    if None in kwargs or any(value is _NOT_LITERAL for value in (*args, *kwargs.values())):
        return None
    return call.func.id, args, {str(key): value for key, value in kwargs.items()}


def expand_calls(text: str, macros: Mapping[str, Callable[..., Any]]) -> str | None:
    """`text` with every `{{ macro(literals) }}` replaced by what the macro returns, or None
    when the text needs Jinja (see the module's docstring).

    Every expression is read before any macro runs, so a page left to Jinja has had no
    macro called on its behalf (some remember what they rendered on which page).
    """
    if _OTHER_SYNTAX.search(text):
        return None
    found: list[tuple[int, int, Call]] = []
    for match in _EXPRESSION.finditer(text):
        if is_alert_template(match.group(1)):
            continue  # quoted as written
        call = _call(match.group(1), macros)
        if call is None:
            return None
        found.append((match.start(), match.end(), call))
    parts: list[str] = []
    end = 0
    for start, stop, (name, args, kwargs) in found:
        parts += (text[end:start], str(macros[name](*args, **kwargs)))
        end = stop
    parts.append(text[end:])
    return "".join(parts)
