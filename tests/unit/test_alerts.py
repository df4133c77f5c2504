"""Alertmanager's webhook read strictly: payloads, credentials, and where each alert leads."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from checks import ConfigError
from drillbook.alerts import (
    AlertingPolicy,
    BadPayload,
    Unauthorized,
    load_alerting,
    parse_notification,
    route,
)

POLICY = Path(__file__).resolve().parents[2] / "policy"


def payload(
    *alerts: dict[str, Any], status: str = "firing", group: str = '{}:{alertname="X"}'
) -> dict[str, Any]:
    """A notification shaped as Alertmanager's webhook sends it (version 4)."""
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "drillbook",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.internal",
        "alerts": list(alerts),
    }


def alert(name: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "SEV2", **labels},
        "annotations": {"summary": f"{name} fires"},
        "startsAt": "2026-12-07T23:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example.internal/graph",
        "fingerprint": "0123456789abcdef",
    }


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


# --------------------------------------------------------------------------- payloads


def test_a_version_4_notification_is_read_with_every_alert() -> None:
    notification = parse_notification(body(payload(alert("HighErrorRate", env="production"))))
    assert notification.status == "firing"
    [only] = notification.alerts
    assert only.name == "HighErrorRate"
    assert only.labels["env"] == "production"
    assert only.starts_at == "2026-12-07T23:00:00Z"


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"{not json", "the body is not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (body({**payload(alert("X")), "version": "3"}), 'version "3": this receiver reads version 4'),
        (body(payload()), "alerts: expected a non-empty list"),
        (body(payload({**alert("X"), "labels": {"severity": "SEV2"}})), "alerts[0].labels: no alertname"),
        (body(payload(alert("X"), status="exploded")), "status: expected firing or resolved"),
        (body({k: v for k, v in payload(alert("X")).items() if k != "groupKey"}), "groupKey"),
        (body(payload({**alert("X"), "labels": {"alertname": "X", "n": 3}})), "alerts[0].labels"),
    ],
)
def test_a_malformed_notification_says_what_is_wrong_and_where(data: bytes, complaint: str) -> None:
    with pytest.raises(BadPayload, match=complaint.replace("[", r"\[").replace("]", r"\]")):
        parse_notification(data)


def test_one_group_is_one_incident_across_its_notifications_and_another_group_another() -> None:
    first = parse_notification(body(payload(alert("HighErrorRate"), group="g1")))
    again = parse_notification(body(payload(alert("HighErrorRate"), alert("X"), group="g1")))
    other = parse_notification(body(payload(alert("HighErrorRate"), group="g2")))
    assert first.incident.startswith("alert-higherrorrate-")
    assert first.incident.split("-")[-1] == again.incident.split("-")[-1]
    assert first.incident != other.incident


# --------------------------------------------------------------------------- credentials


def _policy(**auth: str) -> AlertingPolicy:
    return AlertingPolicy(rules=(), auth=auth, source=Path("alerting.yml"))


def test_the_bearer_token_alertmanager_sends_is_checked() -> None:
    policy = _policy(bearer_token_env="TOKEN")
    environ = {"TOKEN": "s3cret-token"}
    policy.check("Bearer s3cret-token", environ)
    for wrong in (None, "", "Bearer other", "Basic czNjcmV0LXRva2Vu", "s3cret-token"):
        with pytest.raises(Unauthorized, match="Bearer"):
            policy.check(wrong, environ)


def test_basic_auth_checks_user_and_password() -> None:
    policy = _policy(basic_username_env="USER", basic_password_env="PASSWORD")
    environ = {"USER": "alertmanager", "PASSWORD": "pw-123"}

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    policy.check(basic("alertmanager", "pw-123"), environ)
    for wrong in (basic("alertmanager", "pw-124"), basic("someone", "pw-123"), "Basic !!!", "Bearer pw-123"):
        with pytest.raises(Unauthorized, match="basic"):
            policy.check(wrong, environ)


def test_an_unset_secret_is_a_configuration_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="TOKEN, which is not set: export it"):
        _policy(bearer_token_env="TOKEN").credentials({})


def test_the_shipped_policy_loads_and_names_no_secret_value() -> None:
    policy = load_alerting(POLICY / "alerting.yml")
    assert policy.auth == {"bearer_token_env": "DRILLBOOK_RECEIVER_TOKEN"}
    assert policy.concurrency >= 1
    assert policy.environment({"env": "production", "alertname": "X"}) == "production"
    assert policy.environment({"alertname": "X"}) is None


def test_auth_that_mixes_bearer_and_basic_is_refused_by_the_schema(tmp_path: Path) -> None:
    for name in ("alerting.yml", "alerting.schema.json"):
        (tmp_path / name).write_text((POLICY / name).read_text(encoding="utf-8"), encoding="utf-8")
    path = tmp_path / "alerting.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "bearer_token_env: DRILLBOOK_RECEIVER_TOKEN", "bearer_token_env: A\n    basic_username_env: B"
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"alerting\.yml:\d+: receiver\.auth"):
        load_alerting(path)


# --------------------------------------------------------------------------- routing


def test_each_firing_alert_runs_its_runbooks_in_the_environment_its_labels_name() -> None:
    policy = AlertingPolicy(
        rules=(({"env": "production"}, "production"), ({"env": "staging"}, "staging")),
        auth={},
        source=Path("alerting.yml"),
    )
    notification = parse_notification(
        body(
            payload(
                alert("BadRollout", env="production", skill="summarise-v2"),
                alert("HighErrorRate", env="production"),
                alert("HighErrorRate", status="resolved", env="staging"),
                alert("Nobody", env="production"),
                alert("HighErrorRate", env="moon"),
            )
        )
    )
    routes, unrouted = route(
        notification,
        policy,
        runbooks={"BadRollout": ("bad-rollout",), "HighErrorRate": ("high-error-rate", "bad-rollout")},
        label_parameters={"bad-rollout": {"skill": "rollout_skill"}},
        environments=("production", "staging"),
    )
    by_runbook = {r.runbook: r for r in routes}
    assert set(by_runbook) == {"bad-rollout", "high-error-rate"}  # one run each, however many alerts
    assert by_runbook["bad-rollout"].alerts == ("BadRollout", "HighErrorRate")
    assert by_runbook["bad-rollout"].parameters == {"rollout_skill": "summarise-v2"}
    assert by_runbook["high-error-rate"].environment == "production"
    assert {(u.alert, u.reason) for u in unrouted} == {
        ("Nobody", "no runbook lists this alert"),
        ("HighErrorRate", "no rule of alerting.yml matches its labels"),
    }
