"""A storm against the real `drillbook receive`: 500 notifications in a burst, real notebooks.

Runs the sandbox's runbooks for real (dry run): what is counted are the receiver's own
processes, the kernels among them, while the burst lasts."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from checks.targets import sandbox_state_path
from drillbook.alerts import load_alerting
from drillbook.receiver import read_timeline
from sandbox import Driver
from tests.receiver.support import chat_service, project_with_chat, receiving
from tests.unit.test_alerts import alert, payload

pytestmark = pytest.mark.sandbox

# Alerts of runbooks whose diagnosis reads only (and the sandbox is healthy: they find little).
ALERTS = ("ServiceDown", "SlowResponses", "CacheHitRateLow", "PostgresConnectionsHigh", "CostSpike")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _receiver_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                words = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"receive" in words and b"--sandbox" in words:
                return int(entry.name)
    raise AssertionError(f"no drillbook receive process for port {port}")


def test_a_burst_of_500_notifications_runs_each_group_once_with_bounded_kernels(
    sandbox: Driver, tmp_path: Path
) -> None:
    records = tmp_path / "incidents"
    policy = project_with_chat(tmp_path / "project")
    concurrency = load_alerting(policy / "alerting.yml").concurrency
    token = json.loads(sandbox_state_path().read_text(encoding="utf-8"))["secrets"]["receiver_token"]
    headers = {"Authorization": f"Bearer {token}"}
    groups = [f"storm-{n}" for n in range(10)]
    with chat_service() as chat, receiving(policy, records, chat) as url:
        pid = _receiver_pid(url)
        idle = len(_descendants(pid))
        most = idle
        unhealthy: list[str] = []

        def notify(n: int) -> int:
            body = payload(alert(ALERTS[n % len(ALERTS)], env="sandbox"), group=groups[n % len(groups)])
            for _ in range(300):  # as Alertmanager does, until it is taken
                answer = httpx.post(f"{url}/alerts", json=body, headers=headers, timeout=30)
                if answer.status_code != 503:
                    return answer.status_code
                time.sleep(0.05)
            return 503

        with ThreadPoolExecutor(max_workers=8) as clients:
            futures = [clients.submit(notify, n) for n in range(500)]
            deadline = time.monotonic() + 300
            while True:
                most = max(most, len(_descendants(pid)))
                health = httpx.get(f"{url}/healthz", timeout=10)
                if health.status_code != 200:
                    unhealthy.append(health.text)
                elif all(f.done() for f in futures) and health.json()["busy"] == 0:
                    break
                assert time.monotonic() < deadline, "the storm's runs did not end in 300 s"
                time.sleep(0.2)
            answered = [f.result() for f in futures]
        metrics = httpx.get(f"{url}/metrics", timeout=10).text

    assert answered == [202] * 500  # none refused for good: no group lost
    assert unhealthy == []
    events = list(read_timeline(records))
    storm = {
        e["incident"] for e in events if e["event"] == "alert firing" and e["group"].startswith("storm-")
    }
    assert len(storm) == len(groups)
    started = [(e["incident"], e["runbook"]) for e in events if e["event"] == "run started"]
    started = [(incident, runbook) for incident, runbook in started if incident in storm]
    assert len(started) == len(set(started))  # each group and runbook ran once
    assert {incident for incident, _ in started} == storm  # and every group did
    # Idle: the kernel factory and the kernels it keeps ready. At work, per diagnosis at most its
    # kernel and the one that replaces it while the last one stops: bounded by the concurrency,
    # never by the notifications (five times the workers gives 10 over idle).
    assert most - idle <= 2 * concurrency, (idle, most)
    # 500, and whatever the sandbox's own Alertmanager sent meanwhile (it posts here too)
    [accepted] = [line for line in metrics.splitlines() if 'notifications_total{outcome="accepted"}' in line]
    assert int(accepted.split()[-1]) >= 500
