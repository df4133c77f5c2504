"""Sandbox benchmarks: native cold start, and fault to alert for every fault of the catalogue.

    python benchmarks/sandbox.py                       # both, 3 runs each
    python benchmarks/sandbox.py --runs 5 --only start
    python benchmarks/sandbox.py --only alerts --fault db-down --fault latency

Cold start: `up` in a new sandbox directory, reported three times: until every service
answers its health check (the target), until Prometheus has scraped the api a first time
(Prometheus 2.42 applies scrape targets on a 5 s tick, a floor of its own), and until `up`
returns, once Prometheus holds a whole 15 s rate window of the api.
Fault to alert: from `inject` until the webhook receiver has a firing page for one of
the fault's alerts (through Prometheus rule evaluation and Alertmanager), then `clear`
and wait for the alerts to end before the next run. Medians of the runs, printed with
their ratio to the target (≤ 1.00 meets it). Everything runs on loopback in temporary
directories; nothing is left behind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import get_driver, read_state, state_path  # after the path fix above
from sandbox.faults import Injector, catalogue

START_TARGET_S = 5.0
ALERT_TARGET_S = 20.0
ALERT_TIMEOUT_S = 60.0
QUIET_TIMEOUT_S = 90.0
POLL_S = 0.25


@contextmanager
def sandbox_directory() -> Iterator[Path]:
    previous = os.environ.get("DRILLBOOK_SANDBOX_DIR")
    with tempfile.TemporaryDirectory(prefix="drillbook-bench-") as folder:
        Path(folder).chmod(0o755)  # as root, PostgreSQL runs as the postgres OS user
        os.environ["DRILLBOOK_SANDBOX_DIR"] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop("DRILLBOOK_SANDBOX_DIR", None)
            else:
                os.environ["DRILLBOOK_SANDBOX_DIR"] = previous


def cold_starts(runs: int) -> dict[str, list[float]]:
    """Per run: seconds to every service healthy, to the first api scrape, to the end of `up`."""
    took: dict[str, list[float]] = {"healthy": [], "scraped": [], "up": []}
    for run in range(runs):
        with sandbox_directory():
            driver = get_driver("native")
            started = time.perf_counter()
            driver.up(timeout_s=120)
            took["up"].append(time.perf_counter() - started)
            took["healthy"].append(driver.timings["healthy"])  # type: ignore[attr-defined]
            took["scraped"].append(driver.timings["scraped"])  # type: ignore[attr-defined]
            driver.down()
        print(
            f"  cold start run {run + 1}: all healthy {took['healthy'][-1]:.2f} s,"
            f" first scrape {took['scraped'][-1]:.2f} s, up returned {took['up'][-1]:.2f} s",
            flush=True,
        )
    return took


def _active(prometheus: str, names: tuple[str, ...]) -> bool:
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return any(alert["labels"]["alertname"] in names for alert in alerts)


def _paged_at(receiver: str, names: tuple[str, ...], since: datetime) -> datetime | None:
    pages = httpx.get(f"{receiver}/pages", params={"status": "firing"}, timeout=5).json()["pages"]
    for page in pages:
        starts = datetime.fromisoformat(page["startsAt"].replace("Z", "+00:00"))
        if page["labels"]["alertname"] in names and starts >= since - timedelta(seconds=1):
            return datetime.fromisoformat(page["received_at"])
    return None


def _wait(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(POLL_S)


def fault_to_alert(faults: list[str], runs: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in faults}
    with sandbox_directory():
        driver = get_driver("native")
        driver.up(timeout_s=120)
        try:
            endpoints = read_state(state_path())["endpoints"]
            injector = Injector.attach(driver)
            for name in faults:
                alerts = catalogue()[name].alerts
                for run in range(runs):
                    _wait(
                        lambda alerts=alerts: not _active(endpoints["prometheus"], alerts),
                        QUIET_TIMEOUT_S,
                        f"{alerts} quiet",
                    )
                    injected = datetime.now(UTC)
                    injector.inject(name)
                    try:
                        deadline = time.monotonic() + ALERT_TIMEOUT_S
                        paged = None
                        while paged is None and time.monotonic() < deadline:
                            paged = _paged_at(endpoints["receiver"], alerts, injected)
                            time.sleep(POLL_S)
                    finally:
                        injector.clear(name)
                    took = (paged - injected).total_seconds() if paged else float("inf")
                    results[name].append(took)
                    print(f"  {name} run {run + 1}: {took:.1f} s", flush=True)
        finally:
            driver.down()
    return results


def report(label: str, samples: list[float], target_s: float) -> str:
    median = statistics.median(samples)
    spread = f"{min(samples):.2f}-{max(samples):.2f} s, n={len(samples)}"
    verdict = "meets" if median <= target_s else "MISSES"
    ratio = median / target_s
    return f"{label:<24} median {median:6.2f} s  ({spread})  ratio {ratio:4.2f} {verdict} <= {target_s:g} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["start", "alerts"])
    parser.add_argument("--fault", action="append", choices=list(catalogue()), help="repeatable; default all")
    args = parser.parse_args(argv)
    lines: list[str] = []
    if args.only in (None, "start"):
        print("native cold start:", flush=True)
        starts = cold_starts(args.runs)
        lines.append(report("cold start: healthy", starts["healthy"], START_TARGET_S))
        lines.append(report("cold start: first scrape", starts["scraped"], START_TARGET_S))
        lines.append(report("cold start: up returned", starts["up"], START_TARGET_S))
    if args.only in (None, "alerts"):
        print("fault to alert at the receiver:", flush=True)
        for name, samples in fault_to_alert(args.fault or list(catalogue()), args.runs).items():
            lines.append(report(name, samples, ALERT_TARGET_S))
    print(f"\nmachine: {os.cpu_count()} CPUs; scrape and rule evaluation every 2 s")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
