"""The `drillbook` command as an on-call engineer meets it: real processes, real kernels.

Bad input must give one clear message naming what and where, a non-zero exit
code, and a complete record of whatever did run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from checks import load_environments
from drillbook.runner import Runbook, execute, project_root

ROOT = project_root()
HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---
"""


def notebook(folder: Path, name: str, *cells: str, parameters: str = "") -> Path:
    """A py:percent notebook: a parameters cell, then `cells` as code cells."""
    params = 'env = "sandbox"\napply = False\nconfirm = ""\n' + textwrap.dedent(parameters)
    body = "\n".join(f"# %%\n{textwrap.dedent(cell).strip()}\n" for cell in cells)
    path = folder / f"{name}.py"
    path.write_text(f'{HEADER}\n# %% tags=["parameters"]\n{params}\n{body}')
    return path


def drillbook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "drillbook", *args]
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def record_of(folder: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / f"{name}.json").read_text())
    return data


def test_unknown_runbook_names_it_and_lists_the_known_ones() -> None:
    done = drillbook("run", "no-such-runbook")
    assert done.returncode == 2  # usage, as documented
    assert "no runbook 'no-such-runbook'" in done.stderr
    assert "service-down" in done.stderr


def test_unknown_environment_names_the_declared_ones() -> None:
    done = drillbook("run", "service-down", "--env", "prod")
    assert done.returncode == 2
    declared = ", ".join(load_environments())
    assert f"unknown environment 'prod'; environments.yml declares {declared}" in done.stderr


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("retries=many", "parameter retries: 'many' is not a int"),
        ("retries", "write key=value"),
        ("nope=1", "unknown parameter nope"),
        ("apply=true", "apply is set by --apply, not by -p"),
        ("env=production", "env is set by --env, not by -p"),
        ("confirm=production", "confirm is set by --confirm, not by -p"),
    ],
)
def test_malformed_parameter_is_refused_before_anything_runs(tmp_path: Path, flag: str, message: str) -> None:
    book = notebook(tmp_path, "params", "print(retries)", parameters="retries = 3\n")
    done = drillbook("run", str(book), "-p", flag, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("escalation", "--level", "SEV9"), "unknown severity 'SEV9'"),
        (("escalation", "--level", "SEV1", "--elapsed", "soon"), "'soon' is not a duration"),
        (("severity", "--error-ratio", "12"), "--error-ratio"),
        (("severity", "--availability", "-0.5"), "--availability"),
        (("severity", "--measure", "queue_depth=3"), "NAME one of availability"),
        (("severity", "--measure", "saturation=full"), "'full' is not a number"),
        (("severity", "--condition", "gremlins"), "the policy's conditions are credential_leak"),
    ],
)
def test_a_level_or_measurement_out_of_range_is_a_usage_error(args: tuple[str, ...], message: str) -> None:
    done = drillbook(*args)
    assert done.returncode == 2, done.stdout
    assert message in done.stderr
    assert "%" not in done.stdout, "no verdict on a ratio above 1"


@pytest.mark.parametrize("breakage", ["a broken environments.yml", "a policy folder that is not there"])
def test_a_broken_policy_is_one_message_and_exit_4_never_a_traceback(tmp_path: Path, breakage: str) -> None:
    policy = tmp_path / "policy"
    shutil.copytree(ROOT / "policy", policy)
    if breakage == "a broken environments.yml":
        (policy / "environments.yml").write_text("environments: [unclosed\n")
        named = f"{policy / 'environments.yml'}:2: not valid YAML"
    else:
        policy = tmp_path / "nowhere"
        named = f"DRILLBOOK_POLICY_DIR={policy} holds no severity.yml"
    done = drillbook("run", "service-down", env={"DRILLBOOK_POLICY_DIR": str(policy)})
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert named in done.stderr


def test_a_broken_severity_policy_leaves_the_level_unknown_and_the_mitigations_planned(
    tmp_path: Path,
) -> None:
    policy = tmp_path / "policy"
    shutil.copytree(ROOT / "policy", policy)
    (policy / "severity.yml").write_text("levels: [unclosed\n")
    book = notebook(
        tmp_path,
        "triage",
        "from checks import summarize, testing\nsummarize([testing.result('health', 'CRIT')])",
        "print('the mitigation cell ran')",
    )
    done = drillbook(
        "run", str(book), "--out", str(tmp_path / "out"), env={"DRILLBOOK_POLICY_DIR": str(policy)}
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"Suggested severity: unknown: the severity policy cannot be read ({policy / 'severity.yml'}:2"
        in (done.stderr)
    )
    record = record_of(tmp_path / "out", "triage")
    assert [c["status"] for c in record["cells"]][-1] == "ok", "the run goes on to its mitigations"  # type: ignore[index]


def test_installed_outside_a_repository_every_command_says_where_policy_is_looked_for(tmp_path: Path) -> None:
    packages = (
        tmp_path / "site-packages"
    )  # drillbook and checks as a plain install has them: no policy/ beside
    for package in ("checks", "drillbook"):
        shutil.copytree(ROOT / package, packages / package, ignore=shutil.ignore_patterns("__pycache__"))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DRILLBOOK_")}
    for args, code in ((("run", "service-down"), 4), (("list",), 4), (("lint",), 1)):
        done = subprocess.run(
            [sys.executable, "-m", "drillbook", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**environment, "PYTHONPATH": str(packages)},
            check=False,
        )
        assert done.returncode == code, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert "no policy/ folder found above the working directory" in done.stderr
        assert "DRILLBOOK_POLICY_DIR" in done.stderr


def test_a_notebook_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    book = notebook(tmp_path, "latin", "print('ok')")
    book.write_bytes(book.read_bytes() + "print('caf\u00e9')\n".encode("latin-1"))
    done = drillbook("run", str(book), "--out", str(tmp_path / "out"))
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert re.search(rf"{re.escape(str(book))}:\d+: not UTF-8 text \(byte 0xe9\)", done.stderr), done.stderr


def test_a_notebook_without_a_parameter_run_sets_says_what_to_add(tmp_path: Path) -> None:
    book = notebook(tmp_path, "old", "print(env)")
    book.write_text(book.read_text().replace('confirm = ""\n', ""))
    done = drillbook("run", str(book), "--out", str(tmp_path / "out"))
    assert done.returncode == 4
    assert f"{book}: its parameters cell does not define confirm" in done.stderr
    assert 'add confirm = ""' in done.stderr


def test_a_syntax_error_is_found_before_any_cell_runs_and_the_record_names_it(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    book = notebook(
        tmp_path, "broken", f"import pathlib\npathlib.Path({str(ran)!r}).touch()", "if True\n    pass"
    )
    done = drillbook("run", str(book), "--out", str(tmp_path / "out"))
    assert done.returncode == 4
    assert "cell 3, line 1: SyntaxError" in done.stderr
    assert not ran.exists(), "the cells before the broken one ran"
    record = record_of(tmp_path / "out", "broken")
    # parameters, injected parameters, the first cell, the broken one: none ran
    assert [c["status"] for c in record["cells"]] == ["pending"] * 4  # type: ignore[index]
    assert record["error_name"] == "SyntaxError"
    assert "SyntaxError" in (tmp_path / "out" / "broken.md").read_text()


def test_a_hanging_cell_is_interrupted_at_its_deadline_and_the_record_says_where(tmp_path: Path) -> None:
    book = notebook(tmp_path, "hangs", "started = True", "import threading\nthreading.Event().wait()")
    done = drillbook("run", str(book), "--cell-timeout", "2", "--out", str(tmp_path / "out"))
    assert done.returncode == 4
    assert "cell 3 (setup): the cell ran longer than 2 s" in done.stderr
    cells = record_of(tmp_path / "out", "hangs")["cells"]
    assert [c["status"] for c in cells] == ["ok", "ok", "ok", "error"]  # type: ignore[union-attr]
    hung = cells[-1]  # type: ignore[index]
    assert hung["finished_at"] is not None, "the record says when the cell was stopped"
    assert hung["duration_s"] >= 2, "and how long it ran"
    assert "| error |" in (tmp_path / "out" / "hangs.md").read_text()


@pytest.mark.parametrize("seconds", ["0.05", "-1", "0"])
def test_a_cell_timeout_below_a_second_is_a_usage_error(tmp_path: Path, seconds: str) -> None:
    book = notebook(tmp_path, "quick", "print('ok')")
    done = drillbook("run", str(book), "--cell-timeout", seconds, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "--cell-timeout" in done.stderr
    assert "Traceback" not in done.stderr


def _ctrl_c(args: list[str], started: Path) -> tuple[int, str, float]:
    """Run `drillbook ARGS`, press Ctrl-C once `started` exists: the exit code, stderr, and
    the seconds from Ctrl-C to the exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "drillbook", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        # as from a terminal: a test worker may ignore SIGINT, and an ignored signal is inherited
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not started.exists():  # the run has reached the cell that hangs
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"{started} never appeared"
            time.sleep(0.05)  # poll interval of the deadline loop above
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends for Ctrl-C
        pressed = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        return process.returncode, stderr, time.monotonic() - pressed
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def test_ctrl_c_stops_the_running_cell_records_where_and_exits_130(tmp_path: Path) -> None:
    started = tmp_path / "started"
    book = notebook(
        tmp_path,
        "hangs",
        "import pathlib, threading",
        # the hanging cell says it started: Ctrl-C then comes while it runs, never between cells
        f"pathlib.Path({str(started)!r}).touch()\nthreading.Event().wait()",
    )
    code, stderr, _ = _ctrl_c(["run", str(book), "--out", str(tmp_path / "out")], started)
    assert code == 130, stderr
    assert "interrupted by the operator (Ctrl-C)" in stderr
    record = record_of(tmp_path / "out", "hangs")
    assert record["error_name"] == "KeyboardInterrupt"
    hung = record["cells"][-1]  # type: ignore[index]
    assert hung["status"] == "error"
    assert hung["finished_at"] is not None


def test_ctrl_c_during_diagnose_starts_nothing_more_and_exits_130(tmp_path: Path) -> None:
    hang = "import pathlib, threading\npathlib.Path({!r}).touch()\nthreading.Event().wait()"
    names = ("first", "second", "third")
    books = [notebook(tmp_path, name, hang.format(str(tmp_path / name))) for name in names]
    out = tmp_path / "out"
    args = ["diagnose", "--jobs", "1", "--out", str(out), *map(str, books)]
    code, stderr, _ = _ctrl_c(args, tmp_path / "first")
    assert code == 130, stderr
    assert "interrupted" in stderr
    assert not (tmp_path / "second").exists(), "a queued runbook started after Ctrl-C"
    assert record_of(out, "first")["error_name"] == "KeyboardInterrupt"


def test_on_a_terminal_the_running_cell_shows_with_the_time_it_has_run(tmp_path: Path) -> None:
    book = notebook(tmp_path, "slow", "import time\ntime.sleep(2.5)  # a long diagnosis")
    typescript = tmp_path / "typescript"
    command = [sys.executable, "-m", "drillbook", "run", str(book), "--out", str(tmp_path / "out")]
    done = subprocess.run(  # `script` gives the command a terminal, as an on-call engineer's shell does
        ["script", "-qfec", shlex.join(command), str(typescript)],
        cwd=ROOT, capture_output=True, timeout=120, check=False,
        env={**os.environ, "TERM": "xterm-256color"},  # a CI runner may say TERM=dumb: no live display
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", typescript.read_bytes().decode("utf-8", "replace"))
    assert re.search(r"\[ 3/3\] setup running 0:00:0[12]", screen), screen[-2000:]


def test_missing_secret_names_the_variable_to_export(tmp_path: Path) -> None:
    book = notebook(
        tmp_path,
        "secretive",
        "from checks import Targets\ntargets = Targets.from_env(env)",
        "targets.secret('admin_token')",
    )
    environment = {"DRILLBOOK_STAGING_ADMIN_TOKEN": ""}
    done = drillbook("run", str(book), "--env", "staging", "--out", str(tmp_path / "out"), env=environment)
    assert done.returncode == 4
    assert "export DRILLBOOK_STAGING_ADMIN_TOKEN" in done.stderr
    assert (tmp_path / "out" / "secretive.md").is_file()


def test_unreachable_target_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    book = notebook(
        tmp_path,
        "unreachable",
        "from checks import http",
        "health = http.check_health('http://127.0.0.1:1', timeout_s=2)\nhealth",
    )
    done = drillbook("run", str(book), "--out", str(tmp_path / "out"))
    assert done.returncode == 1, done.stderr
    assert "unreachable" in done.stdout


def test_production_change_without_confirmation_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    book = notebook(
        tmp_path,
        "restart",
        "from checks import Gate, Targets, restart_service\nfrom dataclasses import replace",
        f"""
        targets = replace(Targets.from_env(env), platform={{"restart": ("touch", {str(marker)!r})}})
        gate = Gate.for_targets(targets, apply=apply, confirm=confirm)
        gate.run(restart_service(targets, "api"))
        """,
    )
    done = drillbook("run", str(book), "--env", "production", "--apply", "--out", str(tmp_path / "out"))
    assert done.returncode == 3, done.stderr
    assert "needs a confirmation naming it" in done.stderr
    assert not marker.exists()

    confirmed = drillbook(
        "run",
        str(book),
        "--env",
        "production",
        "--apply",
        "--confirm",
        "production",
        "--out",
        str(tmp_path / "ok"),
    )
    assert confirmed.returncode == 0, confirmed.stderr
    assert marker.exists()


ACTION_CELLS = (
    """
    from checks import ActionFailed, Effect, Gate, Plan
    from checks.actions import Action


    class SetAnswer(Action):  # a test double: each case says what its apply observes
        name = "set the answer"

        def plan(self):
            return Plan(self.name, env, "the answer", ("the answer → 42",))

        def lacking(self):
            return "an answer service" if case == "skipped" else None

        def apply(self):
            if case == "failed":
                raise ActionFailed("the platform said no")
            return {
                "changed": Effect.observed(41, 42, "set to 42"),
                "unchanged": Effect.observed(42, 42, "already 42"),
                "held": Effect("held", "no answer to change", before=None, after=None),
            }[case]


    gate = Gate(env, "confirm" if env == "production" else "apply", apply=apply, confirm=confirm)
    gate.run(SetAnswer())
    """,
    'print("the step after the mitigation ran")',
)


def test_a_run_whose_record_cannot_be_written_does_not_start(tmp_path: Path) -> None:
    marker = tmp_path / "restarted"
    book = notebook(tmp_path, "restart", f"import pathlib\npathlib.Path({str(marker)!r}).touch()")
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    done = drillbook("run", str(book), "--apply", "--out", str(not_a_folder / "out"))
    assert done.returncode == 4, done.stderr
    assert f"cannot write the run's record {not_a_folder / 'out'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not marker.exists(), "nothing may change without a record"


def test_the_record_is_on_disk_before_the_first_cell_and_grows_as_cells_end(tmp_path: Path) -> None:
    out = tmp_path / "out"
    journal = out / "journal.json"
    book = notebook(
        tmp_path,
        "journal",
        f"""
        import json, pathlib
        first = json.loads(pathlib.Path({str(journal)!r}).read_text())
        assert first["status"] == "running", first["status"]
        """,
        f"""
        second = json.loads(pathlib.Path({str(journal)!r}).read_text())
        assert [c["status"] for c in second["cells"]][-3:] == ["ok", "pending", "pending"], second["cells"]
        """,
        "print('done')",
    )
    done = drillbook("run", str(book), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert record_of(out, "journal")["status"] == "ok"


@pytest.mark.parametrize(
    ("case", "flags", "state", "code", "observed", "continues"),
    [
        ("changed", (), "planned", 0, None, True),
        ("changed", ("--apply",), "changed", 0, [41, 42], True),
        ("unchanged", ("--apply",), "unchanged", 0, [42, 42], True),
        ("held", ("--apply",), "held", 0, [None, None], True),
        ("skipped", ("--apply",), "skipped", 0, [None, None], True),  # needs what is not here: healthy
        ("changed", ("--env", "production", "--apply"), "refused", 3, [None, None], False),
        ("failed", ("--apply",), "failed", 4, [None, None], False),
    ],
)
def test_each_action_outcome_reaches_the_terminal_the_record_and_the_exit_code(
    tmp_path: Path,
    case: str,
    flags: tuple[str, ...],
    state: str,
    code: int,
    observed: list[int | None] | None,
    continues: bool,
) -> None:
    book = notebook(tmp_path, "answer", *ACTION_CELLS, parameters=f"case = {case!r}\n")
    done = drillbook("run", str(book), *flags, "--out", str(tmp_path / "out"))
    assert done.returncode == code, done.stderr
    assert f"Action {state}: set the answer" in done.stdout + done.stderr
    record = record_of(tmp_path / "out", "answer")
    (action,) = [a for c in record["cells"] for a in c["actions"]]  # type: ignore[attr-defined]
    assert action["state"] == state
    if observed is not None:
        assert [action["before"], action["after"]] == observed
    if observed == [41, 42]:
        assert "41 → 42" in done.stdout
    ran_after = record["cells"][-1]["status"] == "ok"  # type: ignore[index]
    assert ran_after is continues, "a refused or failed step stops the run; the others do not"
    report = (tmp_path / "out" / "answer.md").read_text(encoding="utf-8")
    assert f"- {state}: set the answer" in report
    assert "applied" not in report.lower()


def test_severity_and_escalation_answer_from_the_policy() -> None:
    severity = drillbook("severity", "--error-ratio", "0.12")
    assert severity.returncode == 0
    assert "SEV2 (P1) Major: error_ratio_above: error ratio 12 % > 10 %" in severity.stdout

    leak = drillbook("severity", "--condition", "credential_leak")
    assert leak.returncode == 0
    assert "SEV1 (P0) Critical: credential_leak: given" in leak.stdout
    pool = drillbook("severity", "--measure", "saturation=0.95")
    assert "SEV2 (P1) Major: saturation_above: saturation 95 % > 80 %" in pool.stdout

    escalation = drillbook("escalation", "--level", "P0", "--elapsed", "25m")
    assert escalation.returncode == 0
    assert "Secondary on-call" in escalation.stdout
    assert "Secondary on-call (pager platform-secondary, chat #platform-oncall)" in escalation.stdout
    assert "next step in 0:05:00" in escalation.stdout


CANARY = "canary-7f3a9c2e41b8d6"


def test_canary_secrets_reach_no_report_notebook_record_or_terminal(tmp_path: Path) -> None:
    book = notebook(
        tmp_path,
        "leaky",
        "from checks import CheckResult, Status, Targets\ntargets = Targets.from_env(env)",
        "token = targets.secret('admin_token')\nprint('the token is', token, 'and the note is', note)",
        """
        CheckResult(
            "leak",
            Status.WARN,
            f"saw {token}",
            {"dsn": "postgresql://app:hunter2hunter2@db:5432/app", "header": "Bearer abcdefghijklmnop1234"},
        )
        """,
        parameters='note = ""\n',
    )
    out = tmp_path / "out"
    environment = {"DRILLBOOK_STAGING_ADMIN_TOKEN": CANARY}
    done = drillbook(
        "run", str(book), "--env", "staging", "-p", f"note={CANARY}", "--out", str(out), env=environment
    )

    assert done.returncode == 1, done.stderr
    assert "saw ***" in done.stdout  # the finding is shown, its secret is not
    written = {path.name: path.read_text() for path in out.iterdir()}
    assert set(written) == {"leaky.md", "leaky.json", "leaky.ipynb"}
    for where, text in {**written, "stdout": done.stdout, "stderr": done.stderr}.items():
        for secret in (CANARY, "hunter2hunter2", "abcdefghijklmnop1234"):
            assert secret not in text, f"{secret} leaked into {where}"


@pytest.mark.sandbox
def test_run_against_the_healthy_sandbox_is_exit_0_with_an_audit_record(
    sandbox: object, tmp_path: Path
) -> None:
    out = tmp_path / "record"
    done = drillbook("run", "service-down", "--incident", "INC-7", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert re.search(r"\[\s*\d+/\d+\] diagnosis", done.stderr)  # live progress, one line per cell
    record = record_of(out, "service-down")
    assert record["environment"] == "sandbox"
    assert record["incident"] == "INC-7"
    assert record["operator"]
    assert record["git_revision"]
    assert all(c["started_at"] and c["finished_at"] for c in record["cells"])  # type: ignore[union-attr]
    report = (out / "service-down.md").read_text()
    assert "- operator: " in report
    assert "| health | OK |" in report


@pytest.mark.sandbox
def test_plan_lists_every_mitigation_with_its_exact_command_and_changes_nothing(sandbox: object) -> None:
    done = drillbook("plan", "service-down")
    assert done.returncode == 0, done.stderr
    assert "restart service on api in sandbox" in done.stdout
    assert "-m sandbox" in done.stdout  # the sandbox's own CLI: it waits until the service is ready
    assert "restart api" in done.stdout


@pytest.mark.sandbox
def test_diagnose_sweeps_every_runbook_in_dry_run_with_a_line_and_a_record_each(
    sandbox: object, tmp_path: Path
) -> None:
    out = tmp_path / "sweep"
    done = drillbook("diagnose", "--jobs", "2", "--out", str(out))
    assert done.returncode in (0, 1), done.stderr  # 1: a WARN somewhere, never CRIT on a healthy sandbox
    slugs = [r.slug for r in Runbook.all()]
    for slug in slugs:
        assert re.search(rf"^\S+ {re.escape(slug)}\s+\d+\.\d+s ", done.stdout, re.MULTILINE), done.stdout
        record = record_of(out, slug)
        assert record["status"] == "ok", record["error"]
        actions = [a for c in record["cells"] for a in c["actions"]]  # type: ignore[attr-defined]
        assert actions, slug  # every runbook has mitigations: planned, never applied
        assert all(a["state"] == "planned" for a in actions), slug
    assert "CRIT" not in done.stdout


def test_diagnose_of_a_failing_notebook_is_exit_4_and_the_others_still_report(tmp_path: Path) -> None:
    broken = notebook(tmp_path, "broken", "1 / 0")
    fine = notebook(tmp_path, "fine", "answer = 42")
    done = drillbook("diagnose", str(broken), str(fine), "--out", str(tmp_path / "out"))
    assert done.returncode == 4
    assert re.search(r"broken .*error .*ZeroDivisionError", done.stdout), done.stdout
    assert record_of(tmp_path / "out", "fine")["status"] == "ok"


def test_a_kernel_that_dies_is_reported_and_leaves_no_sockets_behind(tmp_path: Path, scratch: Path) -> None:
    book = notebook(tmp_path, "dies", "alive = True", "import os\nos._exit(3)")
    done = drillbook("run", str(book), "--out", str(tmp_path / "out"), env={"TMPDIR": str(scratch)})
    assert done.returncode == 4
    assert "the kernel died" in done.stderr
    assert record_of(tmp_path / "out", "dies")["status"] == "error"
    assert list(scratch.glob("drillbook-kernel-*")) == []


def test_a_runbook_runs_from_inside_a_running_event_loop(tmp_path: Path) -> None:
    """As from a Jupyter session or an async test: the runner must not need the thread's loop."""

    book = notebook(tmp_path, "inside", "answer = 6 * 7\nprint(answer)")

    async def from_a_loop() -> str:
        return execute(Runbook.find(str(book)), parameters={"env": "sandbox"}).record.status

    statuses: list[str] = []
    caller = threading.Thread(target=lambda: statuses.append(asyncio.run(from_a_loop())))
    caller.start()
    caller.join(timeout=120)
    assert statuses == ["ok"]
