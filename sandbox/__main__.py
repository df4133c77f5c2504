"""`python -m sandbox`: run the sandbox from a shell.

    python -m sandbox up [--timeout SECONDS]   start and wait; prints the endpoints
    python -m sandbox down                     stop everything (exit 0 when nothing runs)
    python -m sandbox status                   one "service state" line per service
    python -m sandbox endpoints                the endpoints as JSON
    python -m sandbox logs SERVICE [-n LINES]
    python -m sandbox stop|start SERVICE
    python -m sandbox faults                   the fault catalogue: name, alerts, description
    python -m sandbox inject|clear FAULT       stage or undo a fault (game days, drills)

Every subcommand takes `--driver auto|native|compose` (default auto).
Exit codes: 0 done; 1 failed (the message says why and how to fix it);
2 bad usage; 3 no sandbox is running, or `status` found a service not running.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from sandbox import SERVICES, NotRunning, SandboxError, get_driver
from sandbox.faults import Injector, catalogue

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--driver",
        choices=["auto", "native", "compose"],
        default="auto",
        help="where the services run (default: auto)",
    )
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Run the drillbook sandbox.")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", parents=[common], help="start every service and wait")
    up.add_argument("--timeout", type=float, help="seconds (default: the driver's)")
    commands.add_parser("down", parents=[common], help="stop everything")
    commands.add_parser("status", parents=[common], help="state of each service")
    commands.add_parser("endpoints", parents=[common], help="endpoints as JSON")
    logs = commands.add_parser("logs", parents=[common], help="last lines of a service's log")
    logs.add_argument("service", choices=SERVICES)
    logs.add_argument("-n", "--lines", type=int, default=50)
    for verb in ("stop", "start"):
        command = commands.add_parser(verb, parents=[common], help=f"{verb} one service")
        command.add_argument("service", choices=SERVICES)
    commands.add_parser("faults", parents=[common], help="list the fault catalogue")
    for verb in ("inject", "clear"):
        command = commands.add_parser(verb, parents=[common], help=f"{verb} one fault")
        command.add_argument("fault", choices=list(catalogue()))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("sandbox: %(message)s"))
    logging.getLogger("sandbox").addHandler(progress)
    logging.getLogger("sandbox").setLevel(logging.INFO)
    if args.command == "faults":
        for fault in catalogue().values():
            print(f"{fault.name:<22} {', '.join(fault.alerts):<26} {fault.description}")
        return EXIT_OK
    driver = get_driver(args.driver)
    try:
        match args.command:
            case "up":
                if args.timeout is None:
                    driver.up()
                else:
                    driver.up(timeout_s=args.timeout)
                for service, endpoint in driver.endpoints().items():
                    print(f"{service:<11} {endpoint}")
            case "down":
                driver.down()
            case "status":
                states = driver.status()
                for service, state in states.items():
                    print(f"{service:<11} {state}")
                if any(state != "running" for state in states.values()):
                    return EXIT_NOT_RUNNING
            case "endpoints":
                print(json.dumps(driver.endpoints(), indent=2))
            case "logs":
                print(driver.logs(args.service, lines=args.lines), end="")
            case "stop":
                driver.stop(args.service)
            case "start":
                driver.start(args.service)
            case "inject":
                Injector.attach(driver).inject(args.fault)
            case "clear":
                Injector.attach(driver).clear(args.fault)
    except NotRunning as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
