"""Alertmanager's webhook, read strictly: the payload, who sent it, and what it asks to run.

Alertmanager posts a group of alerts (webhook payload version 4) to a receiver; this
module turns one such body into `Notification`, checks the sender's credentials
against the variables policy/alerting.yml names, and routes each alert to the runbooks
that list its name (front matter `alerts:`) in the environment its labels map to.

Nothing here runs anything: `drillbook.receiver` queues what `route` returns.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from checks import ConfigError, load_document, parse_duration, policy_dir

__all__ = [
    "Alert",
    "AlertingPolicy",
    "BadPayload",
    "Notification",
    "Route",
    "Unauthorized",
    "load_alerting",
    "parse_notification",
    "route",
]

WEBHOOK_VERSION = "4"


class BadPayload(ValueError):
    """The body is not an Alertmanager webhook notification this receiver understands."""


class Unauthorized(PermissionError):
    """The request does not carry the credentials policy/alerting.yml asks for."""


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert of a notification, as Alertmanager sends it."""

    name: str
    status: str  # firing or resolved
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Notification:
    """One webhook call: a group of alerts and its state."""

    group_key: str
    status: str
    receiver: str
    alerts: tuple[Alert, ...]
    external_url: str = ""

    @property
    def incident(self) -> str:
        """The incident this group is: stable across its notifications, safe as a folder name."""
        names = sorted({alert.name for alert in self.alerts}) or ["alerts"]
        slug = re.sub(r"[^a-z0-9]+", "-", "-".join(names).lower()).strip("-")[:40] or "alerts"
        digest = hashlib.sha256(self.group_key.encode("utf-8")).hexdigest()[:10]
        return f"alert-{slug}-{digest}"


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key, "" if not required else None)
    if not isinstance(value, str) or (required and not value):
        raise BadPayload(f"{where}{key}: expected a non-empty string, got {json.dumps(value)[:80]}")
    return value


def _labels(data: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadPayload(f"{where}{key}: expected an object of strings")
    return dict(value)


def parse_notification(body: bytes) -> Notification:
    """The notification in `body`; `BadPayload` saying what is wrong and where."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadPayload(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadPayload("the body is not a JSON object")
    version = data.get("version")
    if version != WEBHOOK_VERSION:
        raise BadPayload(
            f"webhook payload version {json.dumps(version)}: this receiver reads version {WEBHOOK_VERSION}"
        )
    status = _text(data, "status", "")
    if status not in ("firing", "resolved"):
        raise BadPayload(f"status: expected firing or resolved, got {status!r}")
    raw = data.get("alerts")
    if not isinstance(raw, list) or not raw:
        raise BadPayload("alerts: expected a non-empty list")
    alerts = []
    for index, entry in enumerate(raw):
        where = f"alerts[{index}]."
        if not isinstance(entry, dict):
            raise BadPayload(f"alerts[{index}]: expected an object")
        labels = _labels(entry, "labels", where)
        if "alertname" not in labels:
            raise BadPayload(f"{where}labels: no alertname")
        state = _text(entry, "status", where)
        if state not in ("firing", "resolved"):
            raise BadPayload(f"{where}status: expected firing or resolved, got {state!r}")
        alerts.append(
            Alert(
                name=labels["alertname"],
                status=state,
                labels=labels,
                annotations=_labels(entry, "annotations", where),
                starts_at=_text(entry, "startsAt", where, required=False),
                ends_at=_text(entry, "endsAt", where, required=False),
                fingerprint=_text(entry, "fingerprint", where, required=False),
            )
        )
    return Notification(
        group_key=_text(data, "groupKey", ""),
        status=status,
        receiver=_text(data, "receiver", "", required=False),
        alerts=tuple(alerts),
        external_url=_text(data, "externalURL", "", required=False),
    )


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class AlertingPolicy:
    """policy/alerting.yml, read."""

    rules: tuple[tuple[Mapping[str, str], str], ...]
    auth: Mapping[str, str]
    queue_size: int = 64
    concurrency: int = 2
    fresh_for: timedelta = timedelta(minutes=5)
    run_timeout: timedelta = timedelta(minutes=5)
    notifiers: tuple[Mapping[str, Any], ...] = ()
    source: Path = field(default_factory=Path)

    def environment(self, labels: Mapping[str, str]) -> str | None:
        """The environment of an alert with `labels`: the first rule that matches, else None."""
        for match, environment in self.rules:
            if all(labels.get(key) == value for key, value in match.items()):
                return environment
        return None

    def check(self, authorization: str | None, environ: Mapping[str, str] = os.environ) -> None:
        """Raise `Unauthorized` unless the Authorization header carries the configured credentials."""
        expected = self.credentials(environ)
        given = (authorization or "").strip()
        scheme, _, value = given.partition(" ")
        if "bearer_token_env" in self.auth:
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip(), expected[0]):
                raise Unauthorized("expected `Authorization: Bearer <token>` with the receiver's token")
            return
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("expected HTTP basic authentication") from None
        ok_user = hmac.compare_digest(user, expected[0])
        ok_password = hmac.compare_digest(password, expected[1])
        if scheme.lower() != "basic" or not (ok_user and ok_password):
            raise Unauthorized("expected HTTP basic authentication with the receiver's user and password")

    def credentials(self, environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
        """The secret values the auth settings name; ConfigError naming a variable that is unset."""
        names = [
            self.auth[key]
            for key in ("bearer_token_env", "basic_username_env", "basic_password_env")
            if key in self.auth
        ]
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise ConfigError(
                f"{self.source}: receiver.auth names {', '.join(missing)}, which is not set: export it "
                "with the secret Alertmanager sends (http_config in alertmanager.yml)"
            )
        return tuple(environ[name] for name in names)


def load_alerting(path: Path | None = None) -> AlertingPolicy:
    """Read and validate policy/alerting.yml (or `path`)."""
    path = path or policy_dir() / "alerting.yml"
    data = load_document(path)
    receiver = data["receiver"]
    return AlertingPolicy(
        rules=tuple((dict(rule["match"]), str(rule["environment"])) for rule in data["environments"]),
        auth=dict(receiver["auth"]),
        queue_size=int(receiver.get("queue_size", 64)),
        concurrency=int(receiver.get("concurrency", 2)),
        fresh_for=parse_duration(receiver.get("fresh_for", "5m")),
        run_timeout=parse_duration(receiver.get("run_timeout", "5m")),
        notifiers=tuple(data.get("notifiers", ())),
        source=path,
    )


# --------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True)
class Route:
    """What one notification asks for: a runbook to diagnose in an environment, with the
    parameters its front matter takes from the alerts' labels, for the alerts that led there."""

    runbook: str
    environment: str
    parameters: Mapping[str, str]
    alerts: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.runbook, self.environment)


@dataclass(frozen=True, slots=True)
class Unrouted:
    """An alert nothing can run for, and why (no runbook lists it, no environment rule matches)."""

    alert: str
    reason: str


def route(
    notification: Notification,
    policy: AlertingPolicy,
    runbooks: Mapping[str, Sequence[str]],
    label_parameters: Mapping[str, Mapping[str, str]],
    environments: Sequence[str],
) -> tuple[list[Route], list[Unrouted]]:
    """The runs the firing alerts of `notification` ask for, one per runbook and environment.

    `runbooks` maps an alert name to the runbooks that list it; `label_parameters` a runbook
    to its `label_parameters` front matter (label → notebook parameter); `environments` are
    those environments.yml declares.
    """
    found: dict[tuple[str, str], Route] = {}
    unrouted: list[Unrouted] = []
    for alert in notification.alerts:
        if alert.status != "firing":
            continue
        environment = policy.environment(alert.labels)
        if environment is None:
            unrouted.append(Unrouted(alert.name, f"no rule of {policy.source.name} matches its labels"))
            continue
        if environment not in environments:
            unrouted.append(Unrouted(alert.name, f"environment {environment!r} is not in environments.yml"))
            continue
        slugs = runbooks.get(alert.name, ())
        if not slugs:
            unrouted.append(Unrouted(alert.name, "no runbook lists this alert"))
            continue
        for slug in slugs:
            wanted = label_parameters.get(slug, {})
            params = {
                parameter: alert.labels[label] for label, parameter in wanted.items() if label in alert.labels
            }
            previous = found.get((slug, environment))
            names = (*previous.alerts, alert.name) if previous else (alert.name,)
            merged = {**params, **(previous.parameters if previous else {})}
            found[(slug, environment)] = Route(slug, environment, merged, tuple(dict.fromkeys(names)))
    return list(found.values()), unrouted
