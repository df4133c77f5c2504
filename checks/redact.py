"""Redaction: nothing that looks like a secret reaches a report, an executed notebook, a page or a log.

Here in `checks` so that a check redacts text before it shortens it (a secret cut in
half is no longer recognisable, and its first half would leak); the tooling redacts
every exit with the same `Redactor`.

Two sources: the values of every secret variable that policy/environments.yml
names (when set), and known token shapes (bearer tokens, passwords in DSNs,
API keys), so a secret is masked even when nobody declared it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from checks._errors import CheckError
from checks._policy import load_environments
from checks.targets import sandbox_state_path

__all__ = ["MASK", "Redactor", "redacted"]

MASK = "***"

# Words that name a secret where a value follows (`token: ...`, `aws_secret_access_key = ...`).
_KEYWORDS = r"password|passwd|pwd|secret|token|api[_-]?key|routing[_-]?key|integration[_-]?key|credential"

_SHAPES = (
    # a PEM private key, whole
    (
        re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S),
        rf"-----BEGIN \1PRIVATE KEY-----{MASK}-----END \1PRIVATE KEY-----",
    ),
    # scheme://user:password@host and scheme://:password@host → scheme://user:***@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE), rf"\1{MASK}@"),
    # Authorization: Bearer ... / Basic ...
    (re.compile(r"(\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), rf"\1{MASK}"),
    # SQL: CREATE/ALTER ROLE ... PASSWORD '...'
    (re.compile(r"(\bpassword\s+)'(?:[^']|'')*'", re.IGNORECASE), rf"\1'{MASK}'"),
    # a JSON Web Token: three base64url parts, the first a JSON header
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
    # a Slack webhook's secret path, a Slack token
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows)/)[A-Za-z0-9/_-]+"), rf"\1{MASK}"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), MASK),
    # provider keys: OpenAI-style, Stripe, AWS access key ids, GitHub, Google API keys
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"), MASK),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}\b"), MASK),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), MASK),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), MASK),
    # provider formats, by their documented prefixes and alphabets
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), MASK),  # GitLab personal token
    (re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{40,}"), MASK),  # PyPI upload token
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"), MASK),  # SendGrid
    (re.compile(r"\bSK[0-9a-f]{32}\b"), MASK),  # Twilio API key
    (re.compile(r"\b[0-9a-f]{32}-us[0-9]{1,2}\b"), MASK),  # Mailchimp
    (re.compile(r"\b[0-9]{8,10}:AA[A-Za-z0-9_-]{30,}"), MASK),  # Telegram bot token
    (re.compile(r"(AccountKey=)[A-Za-z0-9+/]{40,}={0,2}"), rf"\1{MASK}"),  # Azure storage
    (re.compile(r"\bsq0(?:csp|atp)-[A-Za-z0-9_-]{22,}"), MASK),  # Square
    # `<name of a secret> = value` or `: value` (aws_secret_access_key, ADMIN_TOKEN, api_key), but
    # not a name that only contains such a word (max_tokens = 1000); a value of three letters or
    # fewer is prose ("admin_token: add it under secrets"), not a secret, and neither is a
    # reference to an environment variable (PGPASSWORD="$DB_PASSWORD"): it names where the value is
    (
        re.compile(
            rf"""(\b\w*(?:{_KEYWORDS})(?:_access_key|_key|_id)?["']?\s*[:=]\s*["']?)(?=[^\s"',;&]{{4}})"""
            r"""(?!(?-i:\$\{?[A-Z_][A-Z0-9_]*\}?)(?:["'\s,;&]|$))"""
            r"""[^\s"',;&]+""",
            re.I,
        ),
        rf"\1{MASK}",
    ),
)


# A mapping key that names a secret: its string value is masked whatever it looks like.
_SECRET_KEY = re.compile(_KEYWORDS, re.IGNORECASE)


class Redactor:
    """Masks known secret values and secret-shaped strings in text and in JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    @classmethod
    def from_policy(cls) -> Redactor:
        """A redactor for every secret variable named in environments.yml that is set here,
        and for the secrets a running sandbox generated. When the policy itself cannot be
        read, its error must still be printed, so every variable whose name looks secret
        (TOKEN, PASSWORD, API_KEY, ...) is masked instead."""
        try:
            environments = load_environments()
            variables = {var for env in environments.values() for var in env.get("secrets", {}).values()}
        except CheckError:
            variables = {name for name in os.environ if _SECRET_KEY.search(name)}
        secrets = [value for var in variables if (value := os.environ.get(var))]
        try:
            state = json.loads(sandbox_state_path().read_text(encoding="utf-8"))
            secrets += [str(v) for v in state.get("secrets", {}).values()]
        except (OSError, ValueError, AttributeError, CheckError):
            pass  # no sandbox running (or no policy to find it by): nothing of its own to mask
        return cls(secrets)

    def adding(self, secrets: Iterable[str]) -> Redactor:
        """A redactor that masks `secrets` as well as everything this one masks."""
        return Redactor([*self._secrets, *secrets])

    def text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in _SHAPES:
            text = pattern.sub(replacement, text)
        return text

    def data(self, value: Any) -> Any:
        """`value` with every string inside it redacted (dicts, lists, nested)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                key: MASK
                if _SECRET_KEY.search(str(key)) and isinstance(item, str) and item
                else self.data(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.data(item) for item in value]
        return value


@cache
def _default() -> Redactor:
    return Redactor.from_policy()


def redacted(text: str, *, limit: int | None = None) -> str:
    """`text` with every secret masked by this process's policy redactor, then cut to `limit`
    characters: in that order, so that a cut never leaves half a secret to leak."""
    clean = _default().text(text)
    return clean if limit is None or len(clean) <= limit else clean[: limit - 1] + "…"
