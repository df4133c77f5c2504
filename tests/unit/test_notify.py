"""Triage notifications reach a real HTTP endpoint on 127.0.0.1: their bodies, redaction,
retries and timeouts, and the configuration that names them."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from checks import ConfigError
from checks.redact import Redactor
from drillbook.notify import (
    Delivery,
    JsonWebhook,
    SlackWebhook,
    Triage,
    notifiers_from_config,
    notify_all,
)
from tests.secret_shapes import SHAPES

HANG = "hang"  # a scripted reply: read the request, never answer


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Endpoint:
    """A local HTTP server that records every request and answers as scripted:
    (status, headers, body) or HANG, in order, then 200."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str], str] | str] = field(default_factory=deque)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T0/B0/endpoint-secret-path"

    def reply(self, *replies: tuple[int, dict[str, str], str] | str) -> None:
        self.script.extend(replies)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append(Request(self.path, headers, body))
            reply = state.script.popleft() if state.script else (200, {}, "ok")
            if reply == HANG:
                state.release.wait(10)
                return
            assert not isinstance(reply, str)
            status, extra, text = reply
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            payload = text.encode()
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


APPLY = "drillbook run upstream-outage --env production --apply --confirm production"
KNOWN_SECRET = "known-Secret-value-42"  # a value the redactor is told about, no shape of its own
DSN = "postgresql://u:hunter2pass@h/db"
SLACK_TOKEN = "xoxb-123456789012-EXAMPLEtoken"


def make_triage(**changes: Any) -> Triage:
    triage = Triage(
        runbook="upstream-outage",
        title="Upstream outage",
        url="https://runbooks.example.internal/runbooks/upstream-outage/",
        environment="production",
        group='{alertname="UpstreamDown"}',
        alerts=("UpstreamDown", "HighErrorRate"),
        status="firing",
        level="SEV2",
        reasons=(
            "upstream_down_with_fallback: reported by check_upstream",
            "error_ratio 12 % above 10 %",
        ),
        findings=(
            ("check_upstream", "CRIT", "payments API refuses connections; fallback serves"),
            ("check_error_ratio", "WARN", "12 % of requests fail"),
            ("check_latency", "WARN", "p95 1.8 s"),
        ),
        planned=(("enable_flag", "api", "payments_fallback=on"),),
        apply_command=APPLY,
        record="runs/upstream-outage-20240101T000000Z.json",
    )
    return replace(triage, **changes)


def slack(endpoint: Endpoint, **options: Any) -> SlackWebhook:
    options = {"redactor": Redactor([KNOWN_SECRET]), "backoff_s": 0.01, **options}
    return SlackWebhook(endpoint.url, **options)


def json_hook(endpoint: Endpoint, **options: Any) -> JsonWebhook:
    options = {"redactor": Redactor([KNOWN_SECRET]), "backoff_s": 0.01, **options}
    return JsonWebhook(endpoint.url, **options)


def slack_texts(body: dict[str, Any]) -> list[str]:
    texts = []
    for block in body["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        else:
            texts += [element["text"] for element in block["elements"]]
    return texts


# ---- bodies ---------------------------------------------------------------------------------


def test_the_text_summary_leads_with_level_runbook_environment_and_count() -> None:
    text = make_triage().to_text()
    lines = text.splitlines()
    assert lines[0] == "[SEV2] upstream-outage in production: 3 findings"
    assert lines[1] == "Why: upstream_down_with_fallback: reported by check_upstream (+1 more reason)"
    assert f"To apply: {APPLY}" in lines
    assert "Runbook: Upstream outage https://runbooks.example.internal/runbooks/upstream-outage/" in lines
    assert "- check_upstream (CRIT): payments API refuses connections; fallback serves" in lines


def test_a_resolved_alert_and_a_failed_run_say_so_first() -> None:
    triage = make_triage(status="resolved", level=None, findings=(), error="kernel died")
    assert (
        triage.to_text().splitlines()[0]
        == "[no severity RESOLVED] upstream-outage in production: diagnosis failed"
    )
    assert "Diagnosis failed: kernel died" in triage.to_text()


def test_the_slack_body_has_fallback_text_and_mrkdwn_blocks_with_what_to_do(endpoint: Endpoint) -> None:
    delivery = slack(endpoint).send(make_triage())

    assert delivery == Delivery("slack", ok=True, attempts=1, status=200)
    [request] = endpoint.requests
    assert request.path == "/hooks/T0/B0/endpoint-secret-path"
    assert request.headers["content-type"].startswith("application/json")
    body = request.json()
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "[SEV2] upstream-outage in production: 3 findings"
    assert all(b["type"] in {"section", "context"} for b in body["blocks"])
    assert all(b["text"]["type"] == "mrkdwn" for b in body["blocks"] if b["type"] == "section")
    everything = "\n".join(slack_texts(body))
    assert "<https://runbooks.example.internal/runbooks/upstream-outage/|Upstream outage>" in everything
    assert "*Why SEV2:* upstream_down_with_fallback: reported by check_upstream" in everything
    assert f"```{APPLY}```" in everything
    assert "enable_flag → api: payments_fallback=on" in everything
    assert "runs/upstream-outage-20240101T000000Z.json" in everything


def test_slack_markup_characters_in_the_data_are_escaped(endpoint: Endpoint) -> None:
    finding = ("check_latency", "WARN", "p95 > 2 s & rising for <api>")
    slack(endpoint).send(make_triage(findings=(finding,), group='{job="a<b>"}'))

    everything = "\n".join(slack_texts(endpoint.requests[0].json()))
    assert "p95 &gt; 2 s &amp; rising for &lt;api&gt;" in everything
    assert '`{job="a&lt;b&gt;"}`' in everything
    assert "<api>" not in everything


def test_the_json_body_is_the_triage_dict_with_its_version(endpoint: Endpoint) -> None:
    triage = make_triage()
    delivery = json_hook(endpoint).send(triage)

    assert delivery.ok
    body = endpoint.requests[0].json()
    assert body == triage.to_dict()
    assert body["version"] == 1
    assert body["findings"][0] == {
        "name": "check_upstream",
        "status": "CRIT",
        "summary": "payments API refuses connections; fallback serves",
    }


# ---- redaction ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [slack, json_hook], ids=["slack", "json"])
def test_secret_values_and_shapes_in_a_finding_never_reach_the_endpoint(
    endpoint: Endpoint, make: Callable[..., SlackWebhook | JsonWebhook]
) -> None:
    summary = f"login failed with {KNOWN_SECRET} at {DSN}; bot {SLACK_TOKEN}"
    triage = make_triage(
        findings=(("check_db", "CRIT", summary),),
        error=f"could not connect to {DSN}",
        apply_command=f"{APPLY} --token {SLACK_TOKEN}",
    )
    assert make(endpoint).send(triage).ok

    sent = endpoint.requests[0].body.decode()
    for secret in (KNOWN_SECRET, "hunter2pass", SLACK_TOKEN):
        assert secret not in sent
    assert "postgresql://u:***@h/db" in sent  # masked, not dropped: the finding still reads


@pytest.mark.parametrize("make", [slack, json_hook], ids=["slack", "json"])
@pytest.mark.parametrize(("name", "text", "secret"), SHAPES, ids=[s[0] for s in SHAPES])
def test_every_known_secret_shape_is_masked_in_the_body(
    endpoint: Endpoint, make: Callable[..., SlackWebhook | JsonWebhook], name: str, text: str, secret: str
) -> None:
    make(endpoint).send(make_triage(findings=(("check_x", "CRIT", f"saw {text} in the log"),)))
    assert secret not in endpoint.requests[0].body.decode()


def test_a_secret_straddling_the_slack_cut_is_masked_whole(endpoint: Endpoint) -> None:
    """The findings section is cut at 3000 characters; wherever the cut falls in the DSN,
    no part of its password is posted."""
    notifier = slack(endpoint)
    cut_inside = 0
    for pad in range(2900, 3000, 3):
        finding = ("check_db", "CRIT", "x" * pad + DSN + " and more")
        notifier.send(make_triage(findings=(finding,)))
        findings = next(t for t in slack_texts(endpoint.requests[-1].json()) if t.startswith("*Findings*"))
        assert len(findings) <= 3000
        assert not re.search(r"u:h", findings), findings[-60:]
        cut_inside += findings.endswith("…") and "postgresql://u:" in findings and "@h/db" not in findings
    assert cut_inside, "no cut fell inside the DSN: the pads no longer straddle 3000"


def test_the_notifier_s_own_url_and_header_values_are_masked(endpoint: Endpoint) -> None:
    token = "Bearer-less-opaque-value-123"
    notifier = json_hook(endpoint, headers={"Authorization": token})
    summary = f"someone pasted {endpoint.url} and {token}"
    notifier.send(make_triage(findings=(("check_x", "CRIT", summary),)))

    sent = endpoint.requests[0].body.decode()
    assert token not in sent
    assert "endpoint-secret-path" not in sent
    assert endpoint.requests[0].headers["authorization"] == token
    assert "url" not in repr(notifier).lower()


def test_an_error_body_that_echoes_a_secret_is_masked_in_the_delivery(endpoint: Endpoint) -> None:
    endpoint.reply((400, {}, f"invalid_token {SLACK_TOKEN}\nsee docs"))
    delivery = slack(endpoint).send(make_triage())
    assert SLACK_TOKEN not in delivery.error
    assert "\n" not in delivery.error


# ---- retries and timeouts -------------------------------------------------------------------


def test_a_500_then_a_200_is_delivered_on_the_second_attempt(endpoint: Endpoint) -> None:
    endpoint.reply((500, {}, "oops"), (200, {}, "ok"))
    delivery = slack(endpoint).send(make_triage())
    assert delivery == Delivery("slack", ok=True, attempts=2, status=200)
    assert len(endpoint.requests) == 2
    assert endpoint.requests[0].body == endpoint.requests[1].body


def test_a_429_waits_as_long_as_retry_after_asks(endpoint: Endpoint) -> None:
    endpoint.reply((429, {"Retry-After": "1"}, "rate_limited"), (200, {}, "ok"))
    started = time.monotonic()
    delivery = slack(endpoint, backoff_s=0.01).send(make_triage())
    elapsed = time.monotonic() - started
    assert delivery.ok
    assert delivery.attempts == 2
    assert 1.0 <= elapsed < 3.0


def test_a_long_retry_after_is_capped(endpoint: Endpoint) -> None:
    endpoint.reply((429, {"Retry-After": "3600"}, ""), (200, {}, ""))
    waits: list[float] = []
    notifier = json_hook(endpoint, retry_after_cap_s=0.2, sleep=waits.append)
    assert notifier.send(make_triage()).ok
    assert waits == [0.2]


def test_a_400_is_not_retried(endpoint: Endpoint) -> None:
    endpoint.reply((400, {}, "invalid_blocks"))
    delivery = slack(endpoint).send(make_triage())
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 1, 400)
    assert "HTTP 400: invalid_blocks" in delivery.error
    assert len(endpoint.requests) == 1


def test_an_endpoint_that_always_fails_gets_every_attempt_then_a_failed_delivery(
    endpoint: Endpoint,
) -> None:
    endpoint.reply(*[(503, {}, "down")] * 5)
    delivery = json_hook(endpoint, attempts=3).send(make_triage())
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 3, 503)
    assert delivery.error == "gave up after 3 attempts: HTTP 503: down"
    assert len(endpoint.requests) == 3


def test_the_backoff_doubles_up_to_its_cap(endpoint: Endpoint) -> None:
    endpoint.reply(*[(500, {}, "")] * 4)
    waits: list[float] = []
    notifier = json_hook(endpoint, attempts=4, backoff_s=0.5, backoff_cap_s=1.5, sleep=waits.append)
    assert not notifier.send(make_triage()).ok
    assert waits == [0.5, 1.0, 1.5]


def test_an_endpoint_that_never_answers_times_out_on_each_attempt(endpoint: Endpoint) -> None:
    endpoint.reply(HANG, HANG, HANG)
    started = time.monotonic()
    delivery = slack(endpoint, timeout_s=0.3, attempts=2).send(make_triage())
    elapsed = time.monotonic() - started
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 2, None)
    assert "no answer within 0.3 s" in delivery.error
    assert len(endpoint.requests) == 2
    assert 0.6 <= elapsed < 2.0


def test_a_refused_connection_is_a_failed_delivery_not_an_exception() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    delivery = SlackWebhook(url, redactor=Redactor(), attempts=2, backoff_s=0.01).send(make_triage())
    assert (delivery.ok, delivery.attempts, delivery.status) == (False, 2, None)
    assert "could not reach it (ConnectError" in delivery.error


# ---- configuration --------------------------------------------------------------------------


def test_the_url_and_header_values_come_from_the_environment(endpoint: Endpoint) -> None:
    environ = {"TEAM_HOOK_URL": endpoint.url, "TEAM_HOOK_AUTH": "Token abc-123-env"}
    [notifier] = notifiers_from_config(
        [
            {
                "name": "team",
                "kind": "json",
                "url_env": "TEAM_HOOK_URL",
                "timeout_seconds": 2,
                "attempts": 1,
                "headers_env": {"Authorization": "TEAM_HOOK_AUTH"},
            }
        ],
        environ=environ,
        redactor=Redactor(),
    )
    assert isinstance(notifier, JsonWebhook)
    assert (notifier.name, notifier.timeout_s, notifier.attempts) == ("team", 2.0, 1)

    assert notifier.send(make_triage()) == Delivery("team", ok=True, attempts=1, status=200)
    assert endpoint.requests[0].headers["authorization"] == "Token abc-123-env"


def test_defaults_and_kinds() -> None:
    environ = {"A": "https://hooks.example.internal/a", "B": "https://hooks.example.internal/b"}
    entries = [
        {"name": "chat", "kind": "slack", "url_env": "A"},
        {"name": "bot", "kind": "json", "url_env": "B"},
    ]
    chat, bot = notifiers_from_config(entries, environ=environ)
    assert isinstance(chat, SlackWebhook)
    assert isinstance(bot, JsonWebhook)
    assert (chat.timeout_s, chat.attempts, chat.backoff_s) == (5.0, 3, 0.5)


def test_a_missing_variable_names_the_entry_and_the_variable() -> None:
    entries = [{"name": "oncall-slack", "kind": "slack", "url_env": "ONCALL_SLACK_WEBHOOK_URL"}]
    with pytest.raises(ConfigError, match=r"'oncall-slack' \(entry 1\).*ONCALL_SLACK_WEBHOOK_URL is not set"):
        notifiers_from_config(entries, environ={})


def test_a_missing_header_variable_names_the_header() -> None:
    entries = [{"name": "bot", "kind": "json", "url_env": "U", "headers_env": {"Authorization": "BOT_AUTH"}}]
    with pytest.raises(ConfigError, match=r"'bot'.*headers_env\.Authorization.*BOT_AUTH is not set"):
        notifiers_from_config(entries, environ={"U": "https://example.internal/"})


def test_an_unknown_kind_is_refused_with_the_known_ones() -> None:
    entries = [{"name": "pager", "kind": "teams", "url_env": "U"}]
    with pytest.raises(ConfigError, match=r"'pager'.*kind is 'teams'; use one of 'slack', 'json'"):
        notifiers_from_config(entries, environ={"U": "https://example.internal/"})


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "kind": "slack", "url": "https://hooks.slack.com/x"}, "a webhook URL is a secret"),
        ({"name": "x", "kind": "slack", "url_env": "U", "retries": 2}, "unknown key"),
        ({"name": "x", "kind": "slack", "url_env": "U", "attempts": 0}, "attempts is 0"),
        ({"name": "x", "kind": "slack", "url_env": "U", "timeout_seconds": "5s"}, "timeout_seconds is '5s'"),
        ({"kind": "slack", "url_env": "U"}, "has no name"),
        ({"name": "x", "kind": "slack", "url_env": "NOT_A_URL"}, "NOT_A_URL does not hold an https://"),
    ],
)
def test_a_wrong_entry_is_refused_saying_how_to_fix_it(entry: dict[str, Any], message: str) -> None:
    environ = {"U": "https://example.internal/", "NOT_A_URL": "example.internal"}
    with pytest.raises(ConfigError, match=re.escape(message)):
        notifiers_from_config([entry], environ=environ)


def test_two_entries_with_one_name_are_refused() -> None:
    entries = [{"name": "x", "kind": "slack", "url_env": "U"}] * 2
    with pytest.raises(ConfigError, match="another entry has that name"):
        notifiers_from_config(entries, environ={"U": "https://example.internal/"})


# ---- notify_all -----------------------------------------------------------------------------


class Broken:
    name = "broken"

    def send(self, triage: Triage) -> Delivery:
        raise RuntimeError(f"bug while sending {KNOWN_SECRET}")


def test_one_dead_or_broken_notifier_never_stops_the_others(endpoint: Endpoint) -> None:
    dead = JsonWebhook(f"http://127.0.0.1:{closed_port()}/", name="dead", redactor=Redactor(), attempts=1)
    deliveries = notify_all([dead, Broken(), slack(endpoint, name="chat")], make_triage())

    assert [(d.notifier, d.ok) for d in deliveries] == [("dead", False), ("broken", False), ("chat", True)]
    assert deliveries[1].error == "RuntimeError"
    assert len(endpoint.requests) == 1
