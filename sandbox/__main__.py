"""`python -m sandbox`: run the sandbox from a shell.

    python -m sandbox up [--timeout SECONDS]   start and wait; prints the endpoints
    python -m sandbox down                     stop everything (exit 0 when nothing runs)
    python -m sandbox status                   one "service state" line per service
    python -m sandbox endpoints                the endpoints as JSON
    python -m sandbox logs SERVICE [-n LINES]
    python -m sandbox stop|start|restart SERVICE   returns once it is down, or up and ready
    python -m sandbox faults                   the fault catalogue: name, alerts, description
    python -m sandbox inject|clear FAULT       stage or undo a fault (game days, drills)

`up`, `down` and `status` take `--replicas N`: the same on N independent sandboxes at
once, replica 0 in the usual directory and replica K in its sibling `<dir>-K`
(parallel test workers take one each). Their output lines start with `replica K:`.

Every subcommand takes `--driver auto|native|compose` (default auto). Before the
subcommand, `--dir DIR` names the sandbox's working directory (default:
$DRILLBOOK_SANDBOX_DIR, else .sandbox/) and `--driver` may also stand there: the
platform commands in the state file use both, so that a runbook's restart reaches
its own sandbox.

`start` and `restart` fail (exit 1, with the tail of the service's log) when the
service does not come up ready, for instance when it exits at once because its port
is taken. With the native driver, if supervisord has died under its services, `status`
reports those that still run as "orphaned", `down` stops them, and `up` stops them
before it starts afresh (see sandbox/_native.py).

`--stack stock` (before or after the subcommand) acts on the stock stack instead
(sandbox/stock: PostgreSQL, Redis, the stock exporters, Prometheus and a small orders
service that is not the reference service), native driver only, in $DRILLBOOK_STOCK_DIR,
else .sandbox-stock/ (`--dir` names it too). Its services, faults and `--replicas`
differ: `python -m sandbox --stack stock faults` lists its faults.

Exit codes: 0 done; 1 failed (the message says why and how to fix it);
2 bad usage; 3 no sandbox is running, or `status` found a service that is not
running under supervision (stopped, exited, or orphaned).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from sandbox import SERVICES, Driver, NotRunning, SandboxError, get_driver, read_state, use_replica
from sandbox.faults import Injector, catalogue
from sandbox.stock import DIR_VARIABLE, STOCK_SERVICES, StockDriver, StockFaults, stock_catalogue

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NOT_RUNNING = 3
EXIT_USAGE = 2
STACKS = ("reference", "stock")
# every stack's names: argparse lists them in --help; each stack then checks its own
ALL_SERVICES = list(dict.fromkeys([*SERVICES, *STOCK_SERVICES]))


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--driver",
        choices=["auto", "native", "compose"],
        default="auto",
        help="where the services run (default: auto)",
    )
    common.add_argument("--stack", choices=STACKS, help="which stack (default: reference)")
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Run the drillbook sandbox.")
    parser.add_argument(
        "--dir",
        type=Path,
        metavar="DIR",
        help="the sandbox's working directory (default: $DRILLBOOK_SANDBOX_DIR, else .sandbox/)",
    )
    parser.add_argument(
        "--driver",
        dest="default_driver",
        choices=["auto", "native", "compose"],
        help="the driver, for a subcommand that names none",
    )
    parser.add_argument(
        "--stack",
        dest="default_stack",
        choices=STACKS,
        help="the reference sandbox (default) or the stock stack, for a subcommand that names none",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    replicas = argparse.ArgumentParser(add_help=False)
    replicas.add_argument(
        "--replicas",
        type=_positive,
        default=1,
        metavar="N",
        help="act on N independent sandboxes at once (default: 1)",
    )
    up = commands.add_parser("up", parents=[common, replicas], help="start every service and wait")
    up.add_argument("--timeout", type=float, help="seconds (default: the driver's)")
    commands.add_parser("down", parents=[common, replicas], help="stop everything")
    commands.add_parser("status", parents=[common, replicas], help="state of each service")
    commands.add_parser("endpoints", parents=[common], help="endpoints as JSON")
    logs = commands.add_parser("logs", parents=[common], help="last lines of a service's log")
    logs.add_argument("service", choices=ALL_SERVICES)
    logs.add_argument("-n", "--lines", type=int, default=50)
    for verb in ("stop", "start", "restart"):
        command = commands.add_parser(verb, parents=[common], help=f"{verb} one service")
        command.add_argument("service", choices=ALL_SERVICES)
    commands.add_parser("faults", parents=[common], help="list the fault catalogue")
    for verb in ("inject", "clear"):
        command = commands.add_parser(verb, parents=[common], help=f"{verb} one fault")
        command.add_argument("fault", choices=list(dict.fromkeys([*catalogue(), *stock_catalogue()])))
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"the number of sandboxes is 1 or more, not {text!r}")
    return value


def _relay(stream: TextIO, prefix: str, out: TextIO) -> None:
    for line in stream:
        out.write(f"{prefix}{line}")
        out.flush()


def _on_replicas(argv: Sequence[str], count: int) -> int:
    """`argv` (a command without --replicas) on replicas 0..count-1 at once; the worst exit code."""
    children = []
    relays = []
    for index in range(count):
        env = dict(os.environ)
        use_replica(env, index)
        child = subprocess.Popen(
            [sys.executable, "-m", "sandbox", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        for stream, out in ((child.stdout, sys.stdout), (child.stderr, sys.stderr)):
            assert stream is not None  # piped above
            relay = threading.Thread(target=_relay, args=(stream, f"replica {index}: ", out), daemon=True)
            relay.start()
            relays.append(relay)
    codes = [child.wait() for child in children]
    for relay in relays:
        relay.join()
    return max(codes)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.stack = args.stack or args.default_stack or "reference"
    if args.stack == "stock":
        return _stock(args)
    if (problem := _not_of(SERVICES, list(catalogue()), args, "python -m sandbox")) is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    if args.dir is not None:  # for this process and the replicas' children alike
        os.environ["DRILLBOOK_SANDBOX_DIR"] = str(args.dir.resolve())
        os.environ.pop("DRILLBOOK_SANDBOX_STATE", None)  # it names another sandbox's file
    if args.driver == "auto" and args.default_driver is not None:
        args.driver = args.default_driver
    if getattr(args, "replicas", 1) > 1:
        single = [args.command, "--driver", args.driver]
        if getattr(args, "timeout", None) is not None:
            single += ["--timeout", str(args.timeout)]
        return _on_replicas(single, args.replicas)
    _progress()
    if args.command == "faults":
        for fault in catalogue().values():
            print(f"{fault.name:<22} {', '.join(fault.alerts):<26} {fault.description}")
        return EXIT_OK
    driver = get_driver(args.driver)
    return _on_driver(driver, args, "python -m sandbox", lambda: Injector.attach(driver))


def _not_of(
    services: Sequence[str], faults: Sequence[str], args: argparse.Namespace, prog: str
) -> str | None:
    """What is wrong when the subcommand names a service or fault that this stack lacks."""
    if (service := getattr(args, "service", None)) is not None and service not in services:
        return f"sandbox: {args.stack} has no service {service!r}; its services: {', '.join(services)}"
    if (fault := getattr(args, "fault", None)) is not None and fault not in faults:
        return f"sandbox: {args.stack} has no fault {fault!r}\nHint: `{prog} faults` lists them."
    return None


def _stock(args: argparse.Namespace) -> int:
    """The subcommand on the stock stack (native driver only)."""
    prog = "python -m sandbox --stack stock"
    if (problem := _not_of(STOCK_SERVICES, list(stock_catalogue()), args, prog)) is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    if args.driver == "compose" or args.default_driver == "compose":
        print(
            "sandbox: the stock stack runs under the native driver; compose.yaml describes it under the"
            " `stock` profile for Docker users\nHint: `docker compose --profile stock up --wait`.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if getattr(args, "replicas", 1) > 1:
        print("sandbox: --replicas applies to the reference sandbox only", file=sys.stderr)
        return EXIT_USAGE
    if args.dir is not None:  # for the platform commands' children too
        os.environ[DIR_VARIABLE] = str(args.dir.resolve())
    _progress()
    if args.command == "faults":
        for fault in stock_catalogue().values():
            print(f"{fault.name:<22} {fault.description}")
        return EXIT_OK
    driver = StockDriver()
    return _on_driver(driver, args, prog, lambda: StockFaults(driver))


def _progress() -> None:
    """The sandbox's progress on stderr, one `sandbox: ...` line per step."""
    progress = logging.StreamHandler(sys.stderr)
    progress.setFormatter(logging.Formatter("sandbox: %(message)s"))
    logging.getLogger("sandbox").addHandler(progress)
    logging.getLogger("sandbox").setLevel(logging.INFO)


def _on_driver(driver: Driver, args: argparse.Namespace, prog: str, faults: Callable[[], Faults]) -> int:
    """The subcommand on `driver`, the same on any stack and driver; `prog` is how a hint names
    the command, `faults` the stack's fault injector. Errors are one line and an exit code."""
    try:
        match args.command:
            case "up":
                if args.timeout is None:
                    driver.up()
                else:
                    driver.up(timeout_s=args.timeout)
                for service, endpoint in driver.endpoints().items():
                    print(f"{service:<11} {endpoint}")
                if receiving := read_state(driver.state_file).get("drillbook_receiver"):
                    print(f"Alertmanager also posts to {receiving}/alerts: run `drillbook receive --sandbox`")
            case "down":
                driver.down()
            case "status":
                states = driver.status()
                width = max(map(len, states), default=0) + 1
                for service, state in states.items():
                    print(f"{service:<{width}} {state}")
                if orphaned := [service for service, state in states.items() if state == "orphaned"]:
                    print(
                        f"sandbox: supervisord is gone, but {', '.join(orphaned)} still run without it"
                        f" (orphaned)\nHint: `{prog} down` stops them, then `{prog} up` starts afresh.",
                        file=sys.stderr,
                    )
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
            case "restart":
                driver.restart(args.service)
            case "inject":
                faults().inject(args.fault)
            case "clear":
                faults().clear(args.fault)
    except NotRunning as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_NOT_RUNNING
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


class Faults(Protocol):
    """What a stack's fault injector offers the command line."""

    def inject(self, name: str) -> None: ...

    def clear(self, name: str) -> None: ...


if __name__ == "__main__":
    sys.exit(main())
