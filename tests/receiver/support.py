"""A chat service on loopback and `drillbook receive --sandbox` as a process, for the end-to-end
test and benchmarks/receiver.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from checks import policy_dir
from checks.targets import sandbox_state_path

REPO = Path(__file__).resolve().parents[2]
CHAT_VARIABLE = "DRILLBOOK_CHAT_WEBHOOK"


@dataclass
class Chat:
    """A Slack-compatible incoming webhook on 127.0.0.1 that keeps what it is sent."""

    url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, needle: str, *, timeout_s: float) -> dict[str, Any]:
        """The first message whose text holds `needle`; AssertionError when none comes in time."""
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while True:
                for message in self.messages:
                    if needle in json.dumps(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no chat message with {needle!r} in {timeout_s:g} s: {self.messages}"
                    )
                self.arrived.wait(left)


@contextmanager
def chat_service() -> Iterator[Chat]:
    chat = Chat()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with chat.arrived:
                chat.messages.append(json.loads(body))
                chat.arrived.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    chat.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/oncall"
    try:
        yield chat
    finally:
        server.shutdown()
        server.server_close()


def project_with_chat(folder: Path) -> Path:
    """This repository's runbooks with a copy of policy/ whose alerting.yml sends the triage to
    the chat service; the policy folder of that project."""
    folder.mkdir(parents=True)
    for shared in ("docs", "notebooks", "mkdocs.yml"):
        (folder / shared).symlink_to(REPO / shared)
    policy = folder / "policy"
    shutil.copytree(policy_dir(), policy)
    alerting = policy / "alerting.yml"
    text = alerting.read_text(encoding="utf-8").replace(
        "notifiers: []", f"notifiers:\n  - {{name: oncall-chat, kind: slack, url_env: {CHAT_VARIABLE}}}"
    )
    alerting.write_text(text, encoding="utf-8")
    return policy


def _state() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(sandbox_state_path().read_text(encoding="utf-8"))
    return state


def receiver_url() -> str:
    return str(_state()["drillbook_receiver"])


def wait_until_quiet(alert: str, *, timeout_s: float = 120) -> None:
    """Return once Alertmanager holds no active `alert`: a fault of an earlier test may still
    keep it firing, and Alertmanager does not notify again of an alert it already sent."""
    url = f"{_state()['endpoints']['alertmanager']}/api/v2/alerts"
    params = {"active": "true", "silenced": "false", "inhibited": "false", "filter": f'alertname="{alert}"'}
    deadline = time.monotonic() + timeout_s
    while httpx.get(url, params=params, timeout=5).json():
        if time.monotonic() > deadline:
            raise AssertionError(f"{alert} was still active in Alertmanager after {timeout_s:g} s")
        time.sleep(0.5)


@contextmanager
def receiving(policy: Path, records: Path, chat: Chat) -> Iterator[str]:
    """`drillbook receive --sandbox` with `policy`, until the block ends; yields its URL once its
    health endpoint answers."""
    env = {**os.environ, "DRILLBOOK_POLICY_DIR": str(policy), CHAT_VARIABLE: chat.url}
    env.pop("DRILLBOOK_RECEIVER_TOKEN", None)  # --sandbox takes the sandbox's own
    log = records.parent / "receiver.log"
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "drillbook", "receive", "--sandbox", "--records", str(records)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = receiver_url()
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"drillbook receive did not start:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
