"""From a fault to the triage in the chat, against the page the same fault sends.

    python benchmarks/receiver.py                 # error-burst, 3 runs
    python benchmarks/receiver.py --runs 5 --fault latency

In a new native sandbox, with `drillbook receive --sandbox` running and a chat service
on loopback: each run waits until the fault's alerts are quiet, injects the fault, and
takes two times from the injection: when the sandbox's pager (the webhook receiver that
Alertmanager posts to) got the firing page, the baseline, and when the chat got the
triage of the fault's runbook. The triage can never come before the page (Alertmanager
posts both at once); what it adds is the diagnosis and the message. Medians of the runs,
and the triage's ratio to the page measured in the same runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.sandbox import QUIET_TIMEOUT_S, _active, _paged_at, _wait, sandbox_directory
from sandbox import get_driver, read_state, state_path
from sandbox.faults import Injector, catalogue
from tests.receiver.support import chat_service, project_with_chat, receiving

TRIAGE_TIMEOUT_S = 120.0


def fault_to_triage(fault: str, runbook: str, runs: int) -> tuple[list[float], list[float]]:
    pages: list[float] = []
    triages: list[float] = []
    alerts = catalogue()[fault].alerts
    with sandbox_directory(), tempfile.TemporaryDirectory(prefix="drillbook-bench-receiver-") as scratch:
        driver = get_driver("native")
        driver.up(timeout_s=120)
        try:
            endpoints = read_state(state_path())["endpoints"]
            injector = Injector.attach(driver)
            policy = project_with_chat(Path(scratch) / "project")
            with chat_service() as chat, receiving(policy, Path(scratch) / "incidents", chat):
                for run in range(runs):
                    _wait(
                        lambda: not _active(endpoints["prometheus"], alerts),
                        QUIET_TIMEOUT_S,
                        f"{alerts} quiet",
                    )
                    seen = len(chat.messages)
                    injected = datetime.now(UTC)
                    started = time.monotonic()
                    injector.inject(fault)
                    try:
                        deadline = started + TRIAGE_TIMEOUT_S
                        while len(chat.messages) == seen or f"{runbook} in sandbox" not in str(
                            chat.messages[seen:]
                        ):
                            if time.monotonic() > deadline:
                                raise TimeoutError(f"no triage of {runbook} in {TRIAGE_TIMEOUT_S:g} s")
                            time.sleep(0.1)
                        triaged = time.monotonic() - started
                        paged = _paged_at(endpoints["receiver"], alerts, injected)
                    finally:
                        injector.clear(fault)
                    page_s = (paged - injected).total_seconds() if paged else float("nan")
                    pages.append(page_s)
                    triages.append(triaged)
                    print(f"  run {run + 1}: page {page_s:.1f} s, triage {triaged:.1f} s", flush=True)
        finally:
            driver.down()
    return pages, triages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fault", default="error-burst", choices=list(catalogue()))
    parser.add_argument("--runbook", default="high-error-rate", help="the runbook whose triage is awaited")
    args = parser.parse_args(argv)
    pages, triages = fault_to_triage(args.fault, args.runbook, args.runs)
    page, triage = statistics.median(pages), statistics.median(triages)
    print(f"\nmachine: {os.cpu_count()} CPUs; scrape and rule evaluation every 2 s")
    print(f"fault to page (baseline)   median {page:6.2f} s  (n={len(pages)})")
    ratio = f"ratio {triage / page:4.2f} of the page"
    print(f"fault to triage in chat    median {triage:6.2f} s  (n={len(triages)})  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
