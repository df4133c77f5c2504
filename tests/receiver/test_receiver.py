"""The receiver's decisions over real HTTP: who may post, what runs, what joins, what waits.

The diagnosis here is a scripted stand-in that records what it was asked to run and holds
until the test lets it go: these tests are about the queue's decisions (coalescing,
freshness, closing, back-pressure, a storm), not about notebooks; the sandbox test beside
this one runs real ones.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from checks.redact import Redactor
from drillbook.alerts import AlertingPolicy
from drillbook.receiver import Job, Receiver, read_timeline, serve
from tests.unit.test_alerts import alert, payload

TOKEN = "receiver-test-token-8c1f"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Diagnoses:
    """Stands in for the notebook runs: records each job, holds it until released."""

    released: threading.Event = field(default_factory=threading.Event)
    seen: list[tuple[str, str, tuple[str, ...]]] = field(default_factory=list)
    running: int = 0
    most: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    seconds: float = 0.0

    def __call__(self, job: Job, folder: Path) -> Mapping[str, Any]:
        with self.lock:
            self.seen.append((job.group_key, job.route.runbook, job.route.alerts))
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            assert self.released.wait(30), "the test never released the diagnosis"
            time.sleep(self.seconds)
        finally:
            with self.lock:
                self.running -= 1
        return {
            "level": "SEV2",
            "findings": [("error-ratio", "CRIT", "50 % of requests failed")],
            "record": "",
        }


@dataclass
class Served:
    url: str
    receiver: Receiver
    runs: Diagnoses
    told: list[str]
    records: Path

    def post(self, data: Any, headers: Mapping[str, str] = AUTH) -> httpx.Response:
        content = data if isinstance(data, bytes) else json.dumps(data).encode()
        return httpx.post(f"{self.url}/alerts", content=content, headers=dict(headers), timeout=10)

    def wait_idle(self, timeout_s: float = 20) -> None:
        deadline = time.monotonic() + timeout_s
        while self.receiver.busy:
            assert time.monotonic() < deadline, "the receiver never became idle"
            time.sleep(0.02)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Served]:
    monkeypatch.setenv("DRILLBOOK_RECEIVER_TOKEN", TOKEN)
    started: list[tuple[Receiver, Any]] = []

    def start(*, queue_size: int = 64, concurrency: int = 2, fresh_for_s: float = 300) -> Served:
        policy = AlertingPolicy(
            rules=(({"env": "sandbox"}, "sandbox"),),
            auth={"bearer_token_env": "DRILLBOOK_RECEIVER_TOKEN"},
            queue_size=queue_size,
            concurrency=concurrency,
            fresh_for=timedelta(seconds=fresh_for_s),
            source=Path("alerting.yml"),
        )
        runs, told = Diagnoses(), []
        receiver = Receiver(
            policy,
            runbooks={"HighErrorRate": ("high-error-rate",), "BadRollout": ("bad-rollout",)},
            label_parameters={},
            environments=("sandbox",),
            records=tmp_path / "incidents",
            run=runs,
            notify=lambda job, outcome: told.append(job.route.runbook) or [("chat", True, "delivered")],
            redactor=Redactor([TOKEN]),
        )
        server = serve(receiver, "127.0.0.1", 0)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        receiver.start()
        started.append((receiver, server))
        return Served(
            f"http://127.0.0.1:{server.server_address[1]}", receiver, runs, told, tmp_path / "incidents"
        )

    yield start
    for receiver, server in started:
        receiver.stop(timeout_s=5)
        server.shutdown()
        server.server_close()


def firing(group: str, name: str = "HighErrorRate") -> dict[str, Any]:
    return payload(alert(name, env="sandbox"), group=group)


# --------------------------------------------------------------------------- who may post


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}], ids=str
)
def test_an_unauthenticated_notification_is_401_with_a_reason_and_runs_nothing(
    served: Callable[..., Served], headers: dict[str, str]
) -> None:
    s = served()
    answer = s.post(firing("g1"), headers=headers)
    assert answer.status_code == 401
    assert "Bearer" in answer.json()["error"]
    assert answer.headers["WWW-Authenticate"]
    assert s.receiver.busy == 0
    assert s.runs.seen == []
    assert (
        'drillbook_receiver_notifications_total{outcome="unauthorized"} 1'
        in httpx.get(f"{s.url}/metrics").text
    )


@pytest.mark.parametrize(
    ("data", "complaint"),
    [(b"{oops", "not JSON"), ({"version": "3"}, "version"), (payload(), "alerts: expected a non-empty list")],
)
def test_a_malformed_notification_is_400_with_a_reason_and_runs_nothing(
    served: Callable[..., Served], data: Any, complaint: str
) -> None:
    s = served()
    answer = s.post(data)
    assert answer.status_code == 400
    assert complaint in answer.json()["error"]
    assert s.runs.seen == []


def test_a_body_over_the_limit_is_413(served: Callable[..., Served]) -> None:
    answer = served().post(b"x" * (2 << 20))
    assert answer.status_code == 413


# --------------------------------------------------------------------------- what runs


def test_a_group_and_runbook_run_once_however_often_alertmanager_repeats_them(
    served: Callable[..., Served],
) -> None:
    s = served(concurrency=1)
    assert s.post(firing("g1")).json()["queued"] == 1
    assert s.post(firing("g1")).json()["joined"] == 1  # queued or running: joins that run
    assert s.post(firing("g2")).json()["queued"] == 1  # another group: its own run
    s.runs.released.set()
    s.wait_idle()
    assert s.post(firing("g1")).json()["fresh"] == 1  # its run just ended: nothing new starts
    assert sorted(group for group, _, _ in s.runs.seen) == ["g1", "g2"]
    assert s.told == ["high-error-rate", "high-error-rate"]


def test_a_resolved_group_drops_its_queued_runs_and_fires_afresh_later(served: Callable[..., Served]) -> None:
    s = served(concurrency=1)
    s.post(firing("busy"))  # holds the only worker
    assert s.post(firing("g1")).json()["queued"] == 1
    resolved = payload(
        alert("HighErrorRate", status="resolved", env="sandbox"), status="resolved", group="g1"
    )
    assert s.post(resolved).json()["closed"] == 1
    s.runs.released.set()
    s.wait_idle()
    assert [group for group, _, _ in s.runs.seen] == ["busy"]
    assert s.post(firing("g1")).json()["queued"] == 1  # a new episode of the group
    s.wait_idle()
    assert [group for group, _, _ in s.runs.seen] == ["busy", "g1"]


def test_a_full_queue_answers_503_so_that_alertmanager_retries_and_no_group_is_lost(
    served: Callable[..., Served],
) -> None:
    s = served(queue_size=2, concurrency=1)
    assert s.post(firing("a")).status_code == 202  # runs
    assert s.post(firing("b")).status_code == 202  # waits
    assert s.post(firing("c")).status_code == 202  # waits
    refused = s.post(firing("d"))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"]
    s.runs.released.set()
    s.wait_idle()
    assert s.post(firing("d")).status_code == 202  # Alertmanager's retry
    s.wait_idle()
    assert sorted(group for group, _, _ in s.runs.seen) == ["a", "b", "c", "d"]


def test_the_timeline_of_a_group_holds_its_alerts_runs_and_triage(served: Callable[..., Served]) -> None:
    s = served()
    s.runs.released.set()
    answer = s.post(firing("g1")).json()
    s.wait_idle()
    s.post(payload(alert("HighErrorRate", status="resolved", env="sandbox"), status="resolved", group="g1"))
    events = [e["event"] for e in read_timeline(s.records, answer["incident"])]
    assert events == ["alert firing", "run started", "run ended", "triage sent", "alert resolved"]
    assert TOKEN not in (s.records / answer["incident"] / "alerts.jsonl").read_text()


# --------------------------------------------------------------------------- a storm


def test_a_storm_of_500_notifications_runs_each_group_once_within_the_limit_and_health_answers(
    served: Callable[..., Served],
) -> None:
    s = served(queue_size=16, concurrency=2)
    s.runs.seconds = 0.05
    s.runs.released.set()
    groups = [f"storm-{n}" for n in range(25)]
    health: list[float] = []
    storming = threading.Event()

    def ask_health() -> None:
        while not storming.is_set():
            started = time.monotonic()
            assert httpx.get(f"{s.url}/healthz", timeout=5).status_code == 200
            health.append(time.monotonic() - started)
            time.sleep(0.01)

    def notify(n: int) -> int:
        group = groups[n % len(groups)]
        for _ in range(200):  # as Alertmanager does: retry what was refused
            answer = s.post(firing(group, "BadRollout" if n % 2 else "HighErrorRate"))
            if answer.status_code == 202:
                return answer.status_code
            assert answer.status_code == 503, answer.text
            time.sleep(0.02)
        return 503

    watcher = threading.Thread(target=ask_health)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=16) as clients:
            answers = list(clients.map(notify, range(500)))
        s.wait_idle(timeout_s=60)
    finally:
        storming.set()
        watcher.join()
    assert answers == [202] * 500  # every notification was taken in the end: none lost
    ran = {(group, runbook) for group, runbook, _ in s.runs.seen}
    assert {group for group, _ in ran} == set(groups)  # every group diagnosed
    assert len(s.runs.seen) <= 2 * len(groups)  # at most a run per group and runbook
    assert s.runs.most <= 2  # never more diagnoses (kernels) at once than the limit
    assert len(health) >= 5, "the health endpoint was asked throughout the storm, and answered each time"
    metrics = httpx.get(f"{s.url}/metrics").text
    assert "drillbook_receiver_queue_depth 0" in metrics
    assert 'drillbook_receiver_notifications_total{outcome="accepted"} 500' in metrics
