"""By hand: what a responder can run without drillbook to see what a check sees.

At 3 a.m. drillbook itself may be what is broken. Beside each diagnosis step the site
shows the PromQL, the SQL, the redis-cli command or the HTTP request a check sends, to
paste into Prometheus, psql, redis-cli or curl. It is generated from the check itself:
a check module builds each of its queries in one function (or one constant) that both
the check and its render call, so the two never drift apart.

A check registers its render where it is defined:

    def _up_by_hand(targets: Targets, args: Mapping[str, Any]) -> list[Manual]:
        return [Manual("promql", up_query(targets, args["service"]), "0 for a target that is down")]

    @by_hand(_up_by_hand)
    def check_up(targets: Targets, service: str = "api", ...) -> CheckResult: ...

`manuals(check_up, targets, {"service": "api"})` binds the arguments onto the check's own
signature, its defaults applied (none is written twice), and calls the render;
`shell(targets, manual)` is the command line for the environment: endpoints as declared,
secrets only ever by the name of the variable that holds them.

The check modules import this one; it imports none of them.
"""

from __future__ import annotations

import inspect
import re
import shlex
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

from checks._errors import ConfigError
from checks.targets import Targets

__all__ = [
    "ENDPOINT_PLACEHOLDERS",
    "Kind",
    "Manual",
    "Render",
    "by_hand",
    "endpoint",
    "inline",
    "manuals",
    "nothing_to_run",
    "percent",
    "redis_words",
    "registered",
    "shell",
]

#: promql: an instant query; sql: a read-only statement; redis: redis-cli command words;
#: http: a URL to GET; none: nothing to run by hand (the note says why).
Kind = Literal["promql", "sql", "redis", "http", "none"]


@dataclass(frozen=True, slots=True)
class Manual:
    """One thing a human can run by hand to see what a check sees: the query, statement,
    command words or URL (`text`), and one line saying what to look at (`note`). `timeout_s`
    is how long the check waits for an HTTP answer, when it is not the environment's."""

    kind: Kind
    text: str
    note: str = ""
    timeout_s: float | None = None


#: A check's render: its by-hand equivalent for an environment, from the check's arguments
#: as it would be called (defaults applied; the targets themselves are not among them).
Render = Callable[[Targets, Mapping[str, Any]], list[Manual]]
F = TypeVar("F", bound=Callable[..., Any])

_RENDERS: dict[str, Render] = {}


def _key(check: Callable[..., Any]) -> str:
    return f"{check.__module__}.{check.__qualname__}"


def by_hand(render: Render) -> Callable[[F], F]:
    """Register `render` as the by-hand equivalent of the decorated check (returned as is)."""

    def register(check: F) -> F:
        _RENDERS[_key(check)] = render
        return check

    return register


def registered(check: Callable[..., Any]) -> bool:
    """Whether `check` has a by-hand render."""
    return _key(check) in _RENDERS


def manuals(
    check: Callable[..., Any],
    targets: Targets,
    args: Mapping[str, Any] | None = None,
    *,
    positional: Sequence[Any] = (),
) -> list[Manual] | None:
    """What a human runs by hand to see what `check(targets, *positional, **args)` sees; None
    for a check that registered no render. The arguments are bound onto the check's own
    signature with its defaults applied; one that has no default and is not given is not in
    what the render gets. Where the environment lacks what the check reads (a signal, a
    setting), the one Manual says so."""
    render = _RENDERS.get(_key(check))
    if render is None:
        return None
    signature = inspect.signature(check)
    try:
        bound = signature.bind_partial(targets, *positional, **dict(args or {}))
    except TypeError as exc:
        raise ConfigError(f"{_key(check)}: {exc}") from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(signature.parameters)))  # the targets
    try:
        return render(targets, arguments)
    except ConfigError as exc:
        return nothing_to_run(f"not applicable in {targets.environment}: {exc}")


def nothing_to_run(why: str) -> list[Manual]:
    """The by-hand equivalent of a check that has none: a note saying why."""
    return [Manual("none", "", why)]


def redis_words(*words: str) -> str:
    """The text of a redis Manual: command words, quoted as redis-cli and a shell both read them."""
    return shlex.join(words)


def percent(share: float) -> str:
    """0.02 → `2 %`: a threshold as a note says it."""
    return f"{share * 100:g} %"


# --------------------------------------------------------------------------- SQL with its values


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, timedelta):
        return f"interval '{value.total_seconds():g} seconds'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, Sequence):
        return "ARRAY[" + ", ".join(_literal(item) for item in value) + "]"
    raise ConfigError(f"no SQL literal for {value!r}")


_PARAMETER = re.compile(r"%\((\w+)\)s|%%")


def inline(sql: str, params: Mapping[str, Any] | None = None) -> str:
    """A statement written for bound parameters (`%(name)s`), with each value written in as a
    literal, for psql: the same statement the check sends, dedented."""
    values = params or {}

    def literal(match: re.Match[str]) -> str:
        if match[0] == "%%":
            return "%"
        if match[1] not in values:
            raise ConfigError(f"no value for the parameter {match[1]!r} of the statement")
        return _literal(values[match[1]])

    return _PARAMETER.sub(literal, textwrap.dedent(sql)).strip()


# --------------------------------------------------------------------------- command lines

#: The variable a command line reads an endpoint from when the environment's is not known
#: here (a sandbox or stock stack takes its endpoints from the state file it writes).
ENDPOINT_PLACEHOLDERS: Mapping[str, str] = {
    "api": "SERVICE_URL",
    "prometheus": "PROMETHEUS_URL",
    "postgres": "DATABASE_URL",
    "redis": "REDIS_URL",
}
_PLACEHOLDER = re.compile(r"\$(" + "|".join(ENDPOINT_PLACEHOLDERS.values()) + r")\b")

# The variable each client reads its password from, and the secret of environments.yml it holds.
_PASSWORDS = {"sql": ("PGPASSWORD", "postgres_password"), "redis": ("REDISCLI_AUTH", "redis_password")}


def endpoint(targets: Targets, name: Literal["api", "prometheus", "postgres", "redis"]) -> str:
    """The environment's endpoint `name`, or `$SERVICE_URL` (...) when it is not known here."""
    value: str | None = getattr(targets, name)
    return value or f"${ENDPOINT_PLACEHOLDERS[name]}"


def _word(text: str) -> str:
    """`text` as one shell word: quoted, except the endpoint placeholders, which expand."""
    pieces = _PLACEHOLDER.split(text)
    quoted = [
        f'"${piece}"' if index % 2 else shlex.quote(piece) for index, piece in enumerate(pieces) if piece
    ]
    return "".join(quoted) or "''"


def _password(targets: Targets, kind: str) -> str:
    """`PGPASSWORD="$VARIABLE" ` where the environment names the variable of the password."""
    client_variable, secret = _PASSWORDS[kind]
    variable = targets.secret_variables.get(secret)
    if not variable or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        return ""
    return f'{client_variable}="${variable}" '


def _promql(targets: Targets, manual: Manual) -> str:
    url = endpoint(targets, "prometheus").rstrip("/") + "/api/v1/query"
    return f"curl -sG {_word(url)} --data-urlencode {shlex.quote('query=' + manual.text)}"


def _sql(targets: Targets, manual: Manual) -> str:
    command = f"{_password(targets, 'sql')}psql {_word(endpoint(targets, 'postgres'))}"
    if "\n" not in manual.text and "'" not in manual.text:
        return f"{command} -c {shlex.quote(manual.text)}"
    # A statement of several lines, or with quotes of its own, reads as written in a quoted here-document.
    end = "SQL"
    while end in (line.strip() for line in manual.text.splitlines()):
        end += "_END"
    return f"{command} <<'{end}'\n{manual.text}\n{end}"


def _redis(targets: Targets, manual: Manual) -> str:
    try:
        words = shlex.join(shlex.split(manual.text))
    except ValueError as exc:
        raise ConfigError(f"not redis-cli command words: {manual.text!r} ({exc})") from None
    return f"{_password(targets, 'redis')}redis-cli -u {_word(endpoint(targets, 'redis'))} {words}"


def _http(targets: Targets, manual: Manual) -> str:
    timeout = manual.timeout_s if manual.timeout_s is not None else targets.query.timeout_seconds
    return f"curl -sS -i -m {timeout:g} {_word(manual.text)}"


_SHELL: Mapping[str, Callable[[Targets, Manual], str]] = {
    "promql": _promql,
    "sql": _sql,
    "redis": _redis,
    "http": _http,
}


def shell(targets: Targets, manual: Manual) -> str:
    """The command line that runs `manual` against the environment of `targets` (curl, psql,
    redis-cli); "" for a Manual with nothing to run. A statement of several lines goes to psql
    in a quoted here-document, as written. A password is only ever named by its variable, and
    the line goes through the redactor all the same."""
    from checks.redact import redacted

    command = _SHELL.get(manual.kind)
    return "" if command is None else redacted(command(targets, manual))
