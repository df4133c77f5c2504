"""`drillbook receive`: Alertmanager pages, drillbook diagnoses, the responder opens a triage.

An HTTP server for Alertmanager's webhook. For each firing alert it finds the runbooks
that list it and runs each one's notebook in dry run (`apply` false, always: it never
changes anything) against the environment the alert's labels map to
(policy/alerting.yml), then posts the triage to the configured notifiers.

On a bad day Alertmanager sends the same groups again and again, and many at once:

- a bounded queue and `concurrency` workers, a kernel each: a storm never starts more
  kernels than that, and the server keeps answering (its health endpoint first);
- one run per alert group, runbook and environment: a notification for a group whose
  run is queued or running joins it, and one whose run ended less than `fresh_for` ago
  starts nothing; when the queue is full the answer is 503 and Alertmanager retries,
  so that no group is lost;
- a resolved notification closes the group: its queued runs are dropped.

Each group is one incident: its folder under the records folder holds every run's record
and `alerts.jsonl`, the timeline of its notifications, runs and deliveries, which
`drillbook incident new --incident <id>` puts into the post-mortem draft.

Endpoints: `POST /alerts` (the webhook), `GET /healthz`, `GET /metrics` (Prometheus).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from checks import CheckError
from checks.redact import Redactor
from drillbook.alerts import (
    AlertingPolicy,
    BadPayload,
    Notification,
    Route,
    Unauthorized,
    parse_notification,
    route,
)

log = logging.getLogger("drillbook.receiver")

MAX_BODY_BYTES = 1 << 20
TIMELINE = "alerts.jsonl"


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


# --------------------------------------------------------------------------- metrics


class Metrics:
    """The receiver's own Prometheus metrics, in the text exposition format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.notifications: dict[str, int] = {}
        self.runs: dict[str, int] = {}
        self.deliveries: dict[str, int] = {}
        self.run_seconds_sum = 0.0
        self.run_seconds_count = 0
        self.queue_depth: Callable[[], int] = lambda: 0
        self.running: Callable[[], int] = lambda: 0

    def count(self, family: dict[str, int], label: str) -> None:
        with self._lock:
            family[label] = family.get(label, 0) + 1

    def observe_run(self, seconds: float) -> None:
        with self._lock:
            self.run_seconds_sum += seconds
            self.run_seconds_count += 1

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP drillbook_receiver_queue_depth Diagnoses waiting for a worker.",
                "# TYPE drillbook_receiver_queue_depth gauge",
                f"drillbook_receiver_queue_depth {self.queue_depth()}",
                "# HELP drillbook_receiver_running Diagnoses running now.",
                "# TYPE drillbook_receiver_running gauge",
                f"drillbook_receiver_running {self.running()}",
            ]
            families = (
                (
                    "notifications",
                    "Webhook notifications by what became of them.",
                    "outcome",
                    self.notifications,
                ),
                ("runs", "Diagnoses by how they ended (ok, findings, failed).", "outcome", self.runs),
                ("deliveries", "Triage deliveries by notifier and result.", "result", self.deliveries),
            )
            for name, text, label, values in families:
                lines += [
                    f"# HELP drillbook_receiver_{name}_total {text}",
                    f"# TYPE drillbook_receiver_{name}_total counter",
                ]
                lines += [
                    f'drillbook_receiver_{name}_total{{{label}="{key}"}} {value}'
                    for key, value in sorted(values.items())
                ]
            lines += [
                "# HELP drillbook_receiver_run_seconds How long diagnoses took, from start to record.",
                "# TYPE drillbook_receiver_run_seconds summary",
                f"drillbook_receiver_run_seconds_sum {self.run_seconds_sum:.3f}",
                f"drillbook_receiver_run_seconds_count {self.run_seconds_count}",
            ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the work


@dataclass(slots=True)
class Job:
    """One diagnosis to run: a runbook in an environment for an alert group."""

    group_key: str
    incident: str
    route: Route
    queued_at: float = field(default_factory=time.monotonic)


class QueueFull(RuntimeError):
    """No room for another run: the caller answers 503 and Alertmanager retries later."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """What one notification led to."""

    queued: int = 0
    joined: int = 0  # coalesced into a run queued or running
    fresh: int = 0  # a run of the group ended less than fresh_for ago
    closed: int = 0  # queued runs dropped because the group resolved
    unrouted: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "joined": self.joined,
            "fresh": self.fresh,
            "closed": self.closed,
            "unrouted": list(self.unrouted),
        }


Runner = Callable[[Job, Path], Mapping[str, Any]]
"""Runs a job with its records in a folder; returns what the triage needs (see `receiver.triage`)."""
Notify = Callable[[Job, Mapping[str, Any]], list[tuple[str, bool, str]]]
"""Tells people about a finished job; (notifier, delivered, detail) per notifier."""


class Receiver:
    """The queue, the workers and the incident records; the HTTP layer sits on `accept`."""

    def __init__(
        self,
        policy: AlertingPolicy,
        *,
        runbooks: Mapping[str, tuple[str, ...]],
        label_parameters: Mapping[str, Mapping[str, str]],
        environments: tuple[str, ...],
        records: Path,
        run: Runner,
        notify: Notify,
        redactor: Redactor,
    ) -> None:
        self.policy = policy
        self.runbooks, self.label_parameters, self.environments = runbooks, label_parameters, environments
        self.records, self._run, self._notify, self.redactor = records, run, notify, redactor
        self.metrics = Metrics()
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._queued: dict[tuple[str, str, str], Job] = {}
        self._running: set[tuple[str, str, str]] = set()
        self._ended: dict[tuple[str, str, str], float] = {}
        self._workers: list[threading.Thread] = []
        self.metrics.queue_depth = lambda: len(self._queued)
        self.metrics.running = lambda: len(self._running)

    # -- lifecycle

    def start(self) -> None:
        for number in range(self.policy.concurrency):
            worker = threading.Thread(target=self._work, name=f"drillbook-receiver-{number}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Drop what is queued, let running diagnoses end, stop the workers."""
        with self._lock:
            self._queued.clear()
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join(timeout_s)

    @property
    def busy(self) -> int:
        with self._lock:
            return len(self._queued) + len(self._running)

    # -- notifications

    def accept(self, notification: Notification) -> Accepted:
        """Queue the runs `notification` asks for; `QueueFull` (nothing queued) when there is no room."""
        incident = notification.incident
        self._timeline(incident, notification)
        if notification.status == "resolved" or all(a.status == "resolved" for a in notification.alerts):
            return Accepted(closed=self._close(notification.group_key, incident))
        routes, unrouted = route(
            notification, self.policy, self.runbooks, self.label_parameters, self.environments
        )
        for miss in unrouted:
            self._event(incident, "unrouted", alert=miss.alert, reason=miss.reason)
        queued = joined = fresh = 0
        now = time.monotonic()
        with self._lock:
            keys = [(notification.group_key, *r.key) for r in routes]
            new = [
                k
                for k in keys
                if k not in self._queued and k not in self._running and not self._is_fresh(k, now)
            ]
            if len(self._queued) + len(new) > self.policy.queue_size:
                raise QueueFull(f"{len(self._queued)} runs are waiting (queue_size {self.policy.queue_size})")
            for key, found in zip(keys, routes, strict=True):
                if key in self._queued:
                    job = self._queued[key]
                    merged = tuple(dict.fromkeys((*job.route.alerts, *found.alerts)))
                    job.route = Route(job.route.runbook, job.route.environment, job.route.parameters, merged)
                    joined += 1
                elif key in self._running:
                    joined += 1
                elif self._is_fresh(key, now):
                    fresh += 1
                else:
                    job = Job(notification.group_key, incident, found)
                    self._queued[key] = job
                    self._queue.put(job)
                    queued += 1
        return Accepted(queued, joined, fresh, 0, tuple(u.alert for u in unrouted))

    def _is_fresh(self, key: tuple[str, str, str], now: float) -> bool:
        ended = self._ended.get(key)
        return ended is not None and now - ended < self.policy.fresh_for.total_seconds()

    def _close(self, group_key: str, incident: str) -> int:
        with self._lock:
            dropped = [key for key in self._queued if key[0] == group_key]
            for key in dropped:
                del self._queued[key]  # its worker finds it gone and skips it
            for key in [k for k in self._ended if k[0] == group_key]:
                del self._ended[key]  # the next firing of this group is a new episode
        if dropped:
            self._event(incident, "closed", dropped=[f"{k[1]} in {k[2]}" for k in dropped])
        return len(dropped)

    # -- workers

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            key = (job.group_key, *job.route.key)
            with self._lock:
                if self._queued.get(key) is not job:
                    continue  # closed, or dropped at stop
                del self._queued[key]
                self._running.add(key)
            try:
                self._one(job)
            finally:
                with self._lock:
                    self._running.discard(key)
                    self._ended[key] = time.monotonic()

    def _one(self, job: Job) -> None:
        folder = self.records / job.incident
        started = time.monotonic()
        self._event(job.incident, "run started", runbook=job.route.runbook, environment=job.route.environment,
                    alerts=list(job.route.alerts))  # fmt: skip
        try:
            outcome = dict(self._run(job, folder))
        except (CheckError, OSError) as exc:  # the run could not start or its record not be written
            outcome = {"error": f"{type(exc).__name__}: {exc}", "level": None, "findings": []}
        elapsed = time.monotonic() - started
        self.metrics.observe_run(elapsed)
        result = "failed" if outcome.get("error") else "findings" if outcome.get("findings") else "ok"
        self.metrics.count(self.metrics.runs, result)
        self._event(
            job.incident, "run ended", runbook=job.route.runbook, environment=job.route.environment,
            result=result, level=outcome.get("level"), record=outcome.get("record", ""),
            findings=[f"{name} {status}" for name, status, _ in outcome.get("findings", [])],
            error=outcome.get("error", ""), seconds=round(elapsed, 2),
        )  # fmt: skip
        for notifier, delivered, detail in self._notify(job, outcome):
            self.metrics.count(self.metrics.deliveries, f"{notifier}:{'ok' if delivered else 'failed'}")
            self._event(job.incident, "triage sent" if delivered else "triage not sent",
                        notifier=notifier, detail=detail)  # fmt: skip

    # -- the incident's timeline

    def _timeline(self, incident: str, notification: Notification) -> None:
        for alert in notification.alerts:
            event = "alert firing" if alert.status == "firing" else "alert resolved"
            at = alert.starts_at if alert.status == "firing" else alert.ends_at
            labels = {k: v for k, v in alert.labels.items() if k != "alertname"}
            self._event(incident, event, alert=alert.name, at=at, group=notification.group_key, labels=labels)

    def _event(self, incident: str, event: str, **details: Any) -> None:
        """Append one event to the incident's timeline, redacted; a timeline that cannot be
        written is logged, never a reason to drop the diagnosis."""
        folder = self.records / incident
        entry = self.redactor.data({"time": _now(), "incident": incident, "event": event, **details})
        line = json.dumps(entry)
        log.info("%s: %s %s", incident, event, json.dumps(self.redactor.data(details)))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with self._lock, (folder / TIMELINE).open("a", encoding="utf-8") as out:
                out.write(line + "\n")
        except OSError as exc:
            log.error("cannot write the timeline of %s: %s", incident, exc)


def read_timeline(records: Path, incident: str | None = None) -> Iterator[dict[str, Any]]:
    """The events of every incident's timeline under `records` (only `incident`'s when given)."""
    for path in sorted(records.glob(f"*/{TIMELINE}")):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the others still count
            if isinstance(event, dict) and (incident is None or event.get("incident") == incident):
                yield event


# --------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _reply(
        self, status: HTTPStatus, body: Mapping[str, Any] | str, *, headers: Mapping[str, str] = {}
    ) -> None:
        if isinstance(body, str):
            data, kind = body.encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8"
        else:
            data, kind = (json.dumps(body) + "\n").encode("utf-8"), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        receiver = self.server.receiver
        if self.path == "/healthz":
            self._reply(HTTPStatus.OK, {"status": "ok", "busy": receiver.busy})
        elif self.path == "/metrics":
            self._reply(HTTPStatus.OK, receiver.metrics.render())
        else:
            self._reply(
                HTTPStatus.NOT_FOUND,
                {"error": f"no {self.path} here: POST /alerts, GET /healthz, GET /metrics"},
            )

    def do_POST(self) -> None:
        receiver = self.server.receiver
        count = receiver.metrics.count
        if self.path != "/alerts":
            self._reply(
                HTTPStatus.NOT_FOUND, {"error": f"no {self.path} here: Alertmanager posts to /alerts"}
            )
            return
        try:
            receiver.policy.check(self.headers.get("Authorization"))
        except Unauthorized as exc:
            count(receiver.metrics.notifications, "unauthorized")
            self._reply(
                HTTPStatus.UNAUTHORIZED, {"error": str(exc)}, headers={"WWW-Authenticate": "Bearer, Basic"}
            )
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            count(receiver.metrics.notifications, "too large")
            self._reply(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"the body is over {MAX_BODY_BYTES} bytes"}
            )
            self.close_connection = True
            return
        try:
            notification = parse_notification(self.rfile.read(length))
        except BadPayload as exc:
            count(receiver.metrics.notifications, "malformed")
            self._reply(HTTPStatus.BAD_REQUEST, {"error": f"not an Alertmanager webhook notification: {exc}"})
            return
        try:
            accepted = receiver.accept(notification)
        except QueueFull as exc:
            count(receiver.metrics.notifications, "queue full")
            self._reply(
                HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"{exc}; retry later"}, headers={"Retry-After": "5"}
            )
            return
        count(receiver.metrics.notifications, "accepted")
        self._reply(HTTPStatus.ACCEPTED, {"incident": notification.incident, **accepted.to_dict()})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a storm's connections wait in the backlog, never reset

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)


def serve(receiver: Receiver, host: str, port: int) -> _Server:
    """An HTTP server for `receiver` on host:port (port 0: any free one); call serve_forever."""
    return _Server((host, port), receiver)


# --------------------------------------------------------------------------- diagnosis


def apply_command(route: Route, gate: str) -> str:
    """The command that applies what a dry run planned: a person's decision, never the receiver's."""
    words = [f"drillbook run {route.runbook} --env {route.environment} --apply"]
    if gate == "confirm":
        words.append(f"--confirm {route.environment}")
    words += [f"-p {name}={value}" for name, value in sorted(route.parameters.items())]
    return " ".join(words)


def diagnosis(
    pool: Any,
    redactor: Redactor,
    *,
    gates: Mapping[str, str],
    titles: Mapping[str, str],
    site_url: str,
    timeout_s: float,
) -> Runner:
    """A `Runner` that executes the job's notebook in dry run with a kernel from `pool`, records it
    in the incident's folder (the record on disk before the first cell) and sums it up."""
    from drillbook.notebooks import RUN_PARAMETERS
    from drillbook.runner import RecordJournal, Runbook, execute, write_outputs

    def run(job: Job, folder: Path) -> Mapping[str, Any]:
        book = Runbook.find(job.route.runbook)
        stem = f"{job.route.runbook}-{job.route.environment}-{datetime.now():%H%M%S}"
        journal = RecordJournal(folder, stem, redactor)  # beside the incident's timeline
        own = {name: value for name, value in job.route.parameters.items() if name not in RUN_PARAMETERS}
        # apply is false whatever a label says: the receiver plans, a person applies.
        parameters = {**own, "env": job.route.environment, "apply": False, "confirm": ""}
        execution = execute(
            book, parameters=parameters, kernel=pool.take(), timeout_s=timeout_s, incident=job.incident,
            journal=journal, only_declared=True,
        )  # fmt: skip
        paths = write_outputs(execution, folder, redactor=redactor, stem=stem)
        record = execution.record
        severity = record.severity or {}
        planned = [a for a in record.actions if a["state"] == "planned"]
        return {
            "runbook": job.route.runbook,
            "title": titles.get(job.route.runbook, job.route.runbook),
            "url": f"{site_url}runbooks/{job.route.runbook}/" if site_url else "",
            "environment": job.route.environment,
            "level": severity.get("level"),
            "reasons": list(severity.get("reasons", [])),
            "findings": [
                (r.name, r.status.value, r.summary) for r in record.results() if not r.ok and r.applies
            ],
            "planned": [(a["action"], a["target"], a.get("detail", "")) for a in planned],
            "apply_command": apply_command(job.route, gates.get(job.route.environment, "apply"))
            if planned
            else "",
            "record": str(paths.get("record", journal.path)),
            "error": record.headline or "" if record.error else "",
        }

    return run


def notifier(notifiers: Sequence[Any]) -> Notify:
    """A `Notify` that posts the triage of a finished job to each of `notifiers`."""
    from drillbook.notify import Triage, notify_all

    def tell(job: Job, outcome: Mapping[str, Any]) -> list[tuple[str, bool, str]]:
        if not notifiers:
            return []
        triage = Triage(
            runbook=job.route.runbook,
            title=str(outcome.get("title") or job.route.runbook),
            url=str(outcome.get("url", "")),
            environment=job.route.environment,
            group=job.group_key,
            alerts=job.route.alerts,
            status="firing",
            level=outcome.get("level"),
            reasons=tuple(outcome.get("reasons", ())),
            findings=tuple(outcome.get("findings", ())),
            planned=tuple(outcome.get("planned", ())),
            apply_command=str(outcome.get("apply_command", "")),
            record=str(outcome.get("record", "")),
            error=str(outcome.get("error", "")),
        )
        return [(d.notifier, d.ok, str(d)) for d in notify_all(notifiers, triage)]

    return tell


_SITE_URL = re.compile(r"^site_url:\s*['\"]?([^'\"\s#]+)", re.MULTILINE)


def site_url(root: Path) -> str:
    """mkdocs.yml's `site_url` with a trailing slash, or "" (the triage then links no page)."""
    try:
        found = _SITE_URL.search((root / "mkdocs.yml").read_text(encoding="utf-8"))
    except OSError:
        return ""
    return found[1].rstrip("/") + "/" if found else ""
