"""Telling people: a triage summary of a dry-run diagnosis, posted to chat and to webhooks.

When an alert fires, the receiver runs the matching runbook's diagnosis in dry run and
hands what it found to `notify_all` as a `Triage`: the suggested severity and the reason
that decided it, the findings that are not OK, the mitigations the dry run planned, the
exact command line that applies them, and links to the runbook page and the run record.

Two kinds of notifier:

- `slack`: a Slack incoming webhook. The body is `{"text": <one-line fallback>,
  "blocks": [...]}`: mrkdwn sections (headline and runbook link, the reason that decided
  the level, findings, planned mitigations, the command that applies them), each cut to
  Slack's 3000 characters, and the run record's path as context. The fallback is what a
  phone notification shows.
- `json`: any HTTP endpoint that takes JSON. The body is `Triage.to_dict()`, which carries
  `"version": 1`; a later change to its shape bumps that number.

Configuring them: a list of entries, one per notifier, read by `notifiers_from_config`::

    - name: oncall-slack
      kind: slack
      url_env: ONCALL_SLACK_WEBHOOK_URL   # the variable that holds the URL, never the URL
    - name: incident-bot
      kind: json
      url_env: INCIDENT_BOT_URL
      timeout_seconds: 3                  # per attempt (default 5)
      attempts: 5                         # in all, the first included (default 3)
      headers_env:
        Authorization: INCIDENT_BOT_AUTH  # the header's value is read from this variable

A webhook URL is a secret (whoever has it can post to the channel), and so is a header
such as Authorization: files name the environment variables that hold them, and
`notifiers_from_config` reads those variables. A variable that is not set, an unknown
kind or a misspelt key raises `checks.ConfigError` naming the entry and how to fix it:
read the configuration when the receiver starts, and it fails then, not at the first alert.

In code::

    notifiers = notifiers_from_config(entries)          # once, at start
    deliveries = notify_all(notifiers, triage)          # per alert group; never raises
    failed = [d for d in deliveries if not d.ok]        # d.error says why, in one line

Redaction: every text that leaves goes through `checks.redact.Redactor` first (the
secret values environments.yml names, the secrets of a running sandbox, and known token
shapes), plus the notifier's own URL and header values. A finding's summary may quote a
DSN with its password; the posted body never does. Text is redacted before it is cut to
a length limit, so a secret straddling the cut is masked whole instead of leaving its
first half in the message.

Delivery: each attempt has a timeout (`timeout_seconds`, for connecting and for each
read and write: an endpoint that sends its answer a byte at a time can hold an attempt
longer). Connection errors, timeouts, 5xx and 429 are retried up to `attempts`
times in all, waiting `backoff_s * 2**(n-1)` seconds after the n-th attempt (capped at
`backoff_cap_s`), or what a `Retry-After` header asks, capped at `retry_after_cap_s`.
Any other 4xx is not retried: the same body would be refused again; nor is a redirect
followed (a webhook that moved gets its new URL where the variable is set). `send` never raises
for a network or HTTP problem: it returns a failed `Delivery` with a one-line error, so a
dead chat service never takes the receiver down with it. A notifier that never answers
costs `attempts` timeouts plus the backoff between them: 3 x 5 s + 0.5 s + 1 s with the
defaults, spent before `notify_all` moves on to the next notifier.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import os
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, Literal, Protocol

import httpx

from checks import ConfigError
from checks.redact import Redactor

__all__ = [
    "Delivery",
    "JsonWebhook",
    "Notifier",
    "SlackWebhook",
    "Triage",
    "notifiers_from_config",
    "notify_all",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SLACK_TEXT_LIMIT = 3000  # characters in a section block's text
SLACK_FALLBACK_LIMIT = 300  # the top-level "text": a notification's one line
_MAX_LISTED = 20  # findings or planned steps listed one by one; the rest are counted
_ERROR_LIMIT = 300  # characters of a Delivery's error


@dataclass(frozen=True)
class Triage:
    """What a dry-run diagnosis of one alert group found, for the people who get paged.

    `reasons[0]` names the severity trigger that decided `level`; `findings` are the
    (name, status, summary) of the results that are not OK; `planned` the (action,
    target, detail) of each mitigation the dry run planned and did not apply. `error`
    is "" when the run worked, else why it did not (findings may then be partial).
    """

    runbook: str
    title: str
    url: str
    environment: str
    group: str
    alerts: tuple[str, ...]
    status: Literal["firing", "resolved"]
    level: str | None
    reasons: tuple[str, ...]
    findings: tuple[tuple[str, str, str], ...]
    planned: tuple[tuple[str, str, str], ...]
    apply_command: str
    record: str
    error: str = ""

    def __post_init__(self) -> None:
        if self.status not in ("firing", "resolved"):
            raise ValueError(f"Triage.status is {self.status!r}: use 'firing' or 'resolved'")
        # tuples whatever the caller passed, so a Triage stays hashable and immutable
        for name in ("alerts", "reasons"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("findings", "planned"):
            object.__setattr__(self, name, tuple(tuple(item) for item in getattr(self, name)))

    def redacted(self, redactor: Redactor) -> Triage:
        """This triage with every text in it masked by `redactor`."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                changes[f.name] = redactor.text(value)
            elif isinstance(value, tuple):
                changes[f.name] = tuple(
                    tuple(redactor.text(part) for part in item)
                    if isinstance(item, tuple)
                    else redactor.text(item)
                    for item in value
                )
        return replace(self, **changes)

    @property
    def headline(self) -> str:
        """`[SEV2] upstream-outage in production: 3 findings`."""
        level = self.level or "no severity"
        tag = f"[{level} RESOLVED]" if self.status == "resolved" else f"[{level}]"
        found = "diagnosis failed" if self.error else _count(len(self.findings), "finding")
        return f"{tag} {self.runbook} in {self.environment}: {found}"

    @property
    def decisive_reason(self) -> str:
        """The reason that decided the level, and how many more there are."""
        if not self.reasons:
            return ""
        more = len(self.reasons) - 1
        return self.reasons[0] + (f" (+{_count(more, 'more reason')})" if more else "")

    def to_text(self) -> str:
        """A plain-text summary a person reads in ten seconds. Not redacted: notifiers redact."""
        lines = [self.headline]
        if self.reasons:
            lines.append(f"Why: {self.decisive_reason}")
        if self.error:
            lines.append(f"Diagnosis failed: {self.error}")
        lines.append(f"Alerts: {', '.join(self.alerts) or '(none)'} ({self.status}; group {self.group})")
        if self.findings:
            lines.append("Findings:")
            lines += _listed(f"- {name} ({status}): {summary}" for name, status, summary in self.findings)
        if self.planned:
            lines.append("Planned mitigations (dry run, nothing applied):")
            lines += _listed(_planned_line(step, "- ") for step in self.planned)
        if self.apply_command:
            lines.append(f"To apply: {self.apply_command}")
        lines.append(f"Runbook: {self.title} {self.url}".rstrip())
        if self.record:
            lines.append(f"Record: {self.record}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form; `version` changes whenever its shape does. Not redacted: notifiers redact."""
        return {
            "version": SCHEMA_VERSION,
            "runbook": self.runbook,
            "title": self.title,
            "url": self.url,
            "environment": self.environment,
            "group": self.group,
            "alerts": list(self.alerts),
            "status": self.status,
            "level": self.level,
            "reasons": list(self.reasons),
            "findings": [{"name": n, "status": s, "summary": m} for n, s, m in self.findings],
            "planned": [{"action": a, "target": t, "detail": d} for a, t, d in self.planned],
            "apply_command": self.apply_command,
            "record": self.record,
            "error": self.error,
        }


@dataclass(frozen=True)
class Delivery:
    """How sending to one notifier went. `status` is the HTTP status of the last attempt
    (None when no response came); `error` one line, "" when `ok`."""

    notifier: str
    ok: bool
    attempts: int
    status: int | None
    error: str = ""

    def __str__(self) -> str:
        outcome = "delivered" if self.ok else f"NOT delivered: {self.error}"
        return f"{self.notifier}: {outcome} ({_count(self.attempts, 'attempt')})"


class Notifier(Protocol):
    """Anything `notify_all` can send a triage to."""

    name: str

    def send(self, triage: Triage) -> Delivery: ...


class _Webhook:
    """An HTTP endpoint that takes a JSON POST, with redaction, a timeout and retries."""

    kind: ClassVar[str]

    def __init__(
        self,
        url: str,
        *,
        name: str = "",
        timeout_s: float = 5.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        backoff_cap_s: float = 8.0,
        retry_after_cap_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name or self.kind
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"notifier {self.name!r}: its URL must start with https:// or http://")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ConfigError(f"notifier {self.name!r}: timeout must be a positive number of seconds")
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigError(f"notifier {self.name!r}: attempts must be a whole number, 1 or more")
        if min(backoff_s, backoff_cap_s, retry_after_cap_s) < 0:
            raise ConfigError(f"notifier {self.name!r}: backoff and caps cannot be negative")
        self.headers = dict(headers or {})
        for header, value in self.headers.items():
            if not value or "\n" in value or "\r" in value:
                raise ConfigError(f"notifier {self.name!r}: header {header} is empty or spans lines")
        self.url = url
        self.timeout_s, self.attempts = float(timeout_s), attempts
        self.backoff_s, self.backoff_cap_s = backoff_s, backoff_cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self._redactor = redactor
        # What only this notifier knows is secret: its URL (whose path is the credential of
        # an incoming webhook) and its header values. Masked in bodies and in errors.
        self._own = Redactor([url, *self.headers.values()])
        self._sleep = sleep

    def __repr__(self) -> str:  # never the URL: it is a credential
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor.from_policy()
        return self._redactor

    def redact(self, text: str) -> str:
        return self._own.text(self.redactor.text(text))

    def payload(self, triage: Triage) -> dict[str, Any]:
        """The JSON body `send` posts for `triage`, redacted."""
        raise NotImplementedError

    def send(self, triage: Triage) -> Delivery:
        """Post `triage`, retrying what may pass on a second try. Never raises for the network."""
        body = json.dumps(self.payload(triage), ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "drillbook-notify/1",
            **self.headers,
        }
        status: int | None = None
        error = ""
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False, verify=_tls()) as client:
            for attempt in range(1, self.attempts + 1):
                wait = self._backoff(attempt)
                try:
                    response = client.post(self.url, content=body, headers=headers)
                except httpx.TimeoutException as exc:
                    status, error = None, f"no answer within {self.timeout_s:g} s ({type(exc).__name__})"
                except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
                    status, error = None, f"could not reach it ({type(exc).__name__}: {exc})"
                except (httpx.HTTPError, httpx.InvalidURL) as exc:  # not transient: do not retry
                    return self._failed(attempt, None, f"request failed ({type(exc).__name__}: {exc})")
                else:
                    status = response.status_code
                    if response.is_success:
                        return Delivery(self.name, ok=True, attempts=attempt, status=status)
                    error = f"HTTP {status}" + (f": {_first_line(response.text)}" if response.text else "")
                    if status != 429 and status < 500:
                        return self._failed(
                            attempt, status, f"{error} (not retried: sent again, it would fail again)"
                        )
                    asked = _retry_after(response.headers.get("Retry-After"))
                    if asked is not None:
                        wait = min(asked, self.retry_after_cap_s)
                if attempt < self.attempts:
                    retry = "notifier %s: attempt %d failed (%s), retrying in %.2f s"
                    log.info(retry, self.name, attempt, self.redact(error), wait)
                    self._sleep(wait)
        return self._failed(
            self.attempts, status, f"gave up after {_count(self.attempts, 'attempt')}: {error}"
        )

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff_s * 2 ** (attempt - 1), self.backoff_cap_s))

    def _failed(self, attempts: int, status: int | None, error: str) -> Delivery:
        return Delivery(
            self.name,
            ok=False,
            attempts=attempts,
            status=status,
            error=_cut(" ".join(self.redact(error).split()), _ERROR_LIMIT),
        )


class SlackWebhook(_Webhook):
    """A Slack incoming webhook: mrkdwn sections, the fallback text the notification shows."""

    kind = "slack"

    def payload(self, triage: Triage) -> dict[str, Any]:
        t = triage.redacted(self.redactor).redacted(self._own)
        e = _slack_escape
        title = f"<{e(t.url)}|{e(t.title or t.runbook)}>" if t.url else e(t.title or t.runbook)
        sections = [
            f"*{e(t.headline)}*\n"
            f"Runbook: {title}\n"
            f"Alerts: {e(', '.join(t.alerts) or '(none)')} ({e(t.status)}; group `{e(t.group)}`)"
        ]
        if t.reasons:
            sections.append(f"*Why {e(t.level or 'no severity')}:* {e(t.decisive_reason)}")
        if t.error:
            sections.append(f"*Diagnosis failed:* {e(t.error)}")
        if t.findings:
            sections.append(
                "*Findings*\n" + "\n".join(_listed(f"• *{e(n)}* ({e(s)}): {e(m)}" for n, s, m in t.findings))
            )
        if t.planned:
            planned = _listed(e(_planned_line(step, "• ")) for step in t.planned)
            sections.append("*Planned mitigations* (dry run, nothing applied)\n" + "\n".join(planned))
        if t.apply_command:
            sections.append(f"*To apply:*\n```{e(t.apply_command)}```")
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": self._slack_text(text)}}
            for text in sections
        ]
        if t.record:
            record = self._slack_text(f"Run record: `{e(t.record)}`")
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": record}]})
        fallback = _cut(self.redact(e(t.headline)), SLACK_FALLBACK_LIMIT)
        return {"text": fallback, "blocks": blocks}

    def _slack_text(self, text: str) -> str:
        # once more on the whole text (a shape may span two fields), and only then cut
        return _cut(self.redact(text), SLACK_TEXT_LIMIT)


class JsonWebhook(_Webhook):
    """A generic webhook: the body is `Triage.to_dict()`, redacted."""

    kind = "json"

    def payload(self, triage: Triage) -> dict[str, Any]:
        data = self.redactor.data(triage.to_dict())
        return dict(self._own.data(data))


KINDS: dict[str, type[_Webhook]] = {"slack": SlackWebhook, "json": JsonWebhook}
_KEYS = {"name", "kind", "url_env", "timeout_seconds", "attempts", "headers_env"}


def notifiers_from_config(
    entries: Sequence[Mapping[str, Any]],
    *,
    environ: Mapping[str, str] = os.environ,
    redactor: Redactor | None = None,
) -> list[Notifier]:
    """The notifiers `entries` describe, URLs and header values read from `environ`.

    Raises `checks.ConfigError` naming the entry and the fix for a variable that is not
    set, an unknown kind, a key that is not one of name, kind, url_env, timeout_seconds,
    attempts, headers_env, or two entries with the same name."""
    notifiers: list[Notifier] = []
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"notifier entry {index} is not a mapping: give name, kind and url_env")
        name = entry.get("name")
        where = f"notifier {name!r} (entry {index})" if name else f"notifier entry {index}"
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where} has no name: give it one, e.g. name: oncall-slack")
        if name in {n.name for n in notifiers}:
            raise ConfigError(f"{where}: another entry has that name; give each notifier its own")
        if "url" in entry:
            raise ConfigError(
                f"{where} has a url: a webhook URL is a secret, never in a file. Put it in an "
                "environment variable and name that variable with url_env"
            )
        unknown = sorted(set(entry) - _KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
            )
        kind = entry.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"{where}: kind is {kind!r}; use one of {', '.join(repr(k) for k in KINDS)}")
        url = _variable(environ, entry.get("url_env"), f"{where}: url_env", "the webhook's URL")
        headers_env = entry.get("headers_env") or {}
        if not isinstance(headers_env, Mapping):
            raise ConfigError(
                f"{where}: headers_env maps a header name to a variable, e.g. Authorization: BOT_AUTH"
            )
        headers = {
            str(header): _variable(
                environ, var, f"{where}: headers_env.{header}", f"the {header} header's value"
            )
            for header, var in headers_env.items()
        }
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{where}: {entry['url_env']} does not hold an https:// or http:// URL")
        timeout = entry.get("timeout_seconds", 5)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
            raise ConfigError(f"{where}: timeout_seconds is {timeout!r}; give a number of seconds, e.g. 5")
        attempts = entry.get("attempts", 3)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigError(f"{where}: attempts is {attempts!r}; give a whole number, 1 or more, e.g. 3")
        notifier = KINDS[kind](
            url, name=name, timeout_s=float(timeout), attempts=attempts, headers=headers, redactor=redactor
        )
        notifiers.append(notifier)
    return notifiers


def notify_all(notifiers: Sequence[Notifier], triage: Triage) -> list[Delivery]:
    """Send `triage` to each notifier in turn; one that fails never stops the others."""
    deliveries = []
    for notifier in notifiers:
        try:
            delivery = notifier.send(triage)
        except Exception as exc:  # a bug in one notifier must not silence the rest
            # the type only: an exception's message may quote what it was sending
            delivery = Delivery(notifier.name, ok=False, attempts=0, status=None, error=type(exc).__name__)
            log.error("notifier %s raised %s", notifier.name, type(exc).__name__)
        (log.info if delivery.ok else log.warning)("%s", delivery)
        deliveries.append(delivery)
    return deliveries


def _variable(environ: Mapping[str, str], var: object, where: str, what: str) -> str:
    if not isinstance(var, str) or not var:
        raise ConfigError(f"{where} must name the environment variable that holds {what}")
    value = environ.get(var, "")
    if not value:
        raise ConfigError(f"{where}: environment variable {var} is not set; set it to {what}")
    return value


@cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every send: building one reads the CA bundle, a fifth of a second."""
    return httpx.create_ssl_context()


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), None if none."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _slack_escape(text: str) -> str:
    """The three characters Slack's mrkdwn reads as markup: `&`, `<`, `>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, never ending inside an HTML entity (`&amp;`).
    Cut only text already redacted: half a secret is no longer recognisable as one."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    amp = head.rfind("&", max(0, len(head) - 5))
    if amp >= 0 and ";" not in head[amp:]:
        head = head[:amp]
    return head + "…"


def _first_line(text: str) -> str:
    return _cut(" ".join(text.split()), 200)


def _count(n: int, noun: str) -> str:
    return f"{'no' if n == 0 else n} {noun}{'' if n == 1 else 's'}"


def _planned_line(step: tuple[str, ...], bullet: str) -> str:
    action, target, detail = step
    return f"{bullet}{action} → {target}" + (f": {detail}" if detail else "")


def _listed(lines: Iterable[str]) -> list[str]:
    """The first lines one by one, then how many more."""
    items = list(lines)
    if len(items) <= _MAX_LISTED:
        return items
    return [*items[:_MAX_LISTED], f"… and {len(items) - _MAX_LISTED} more"]
