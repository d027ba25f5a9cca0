"""The `--fix` step of a pytest session: its options, how a person is told and asked, Ctrl-C, the exit status."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from healthchecks.observe import MachineObservation
from healthchecks.options import value
from healthchecks.run import Run
from healthchecks.text import for_people

from .confirm import ask
from .machine import fix_machine
from .plan import Options, Plan
from .run import FixReport, fix

EXIT_INTERRUPTED = 130  # what a shell reports for a program ended by Ctrl-C
OPTIONS = pytest.StashKey[Options]()


def configure(config: pytest.Config) -> None:
    """Read the fix's options: a bad value is a usage error before anything runs."""
    config.stash[OPTIONS] = Options(
        prune=value(config, "--prune"),
        kill_attached=value(config, "--kill-attached"),
        allow_server_down=value(config, "--allow-server-down"),
        keep_backups=value(config, "--keep-backups"),
        backup_days=value(config, "--backup-days"),
    )


def say(config: pytest.Config, title: str, lines: list[str]) -> None:
    """To the terminal report, or to stderr when another output (--status-line) owns stdout: what the fix
    plans and does always reaches a person."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line("")  # under xdist the progress line is still open
        reporter.write_sep("=", title)
        for line in lines:
            reporter.write_line(for_people(line))
    else:
        sys.stderr.write("".join(f"{for_people(line)}\n" for line in [f"== {title} ==", *lines]))
        sys.stderr.flush()


def run_fix(config: pytest.Config, run: Run, selected: set[str]) -> None:
    """Plan, confirm once, act, verify: before the tests run, so that they judge the machine the fix left.

    Ctrl-C (at the prompt or while acting) ends the whole run with 130 and one line on what was done.
    """

    def confirm(plan: Plan) -> tuple[bool, str]:
        if value(config, "--yes"):
            return True, "confirmed by --yes"
        return ask(plan.lines(), len(plan.actions))

    options = dataclasses.replace(config.stash[OPTIONS], selected=frozenset(selected))
    fixed = run.fix_report = FixReport(Plan())
    show, dry_run = (lambda lines: say(config, "remediation plan", lines)), value(config, "--dry-run")
    try:
        if isinstance(run.observation, MachineObservation):  # every manager's plan, one confirmation
            fix_machine(run.observation, options, dry_run=dry_run, confirm=confirm, show=show, report=fixed)
        else:
            fix(run.observation, run.snapshot.settings, options, dry_run=dry_run, confirm=confirm, show=show,
                report=fixed)
    except KeyboardInterrupt:
        fixed.interrupted = True
        done = fixed.done
        fixed.message = (
            f"interrupted: {done} action(s) done, {len(fixed.plan.actions) - done} not done"
            if fixed.applied
            else "interrupted at the prompt: nothing was changed"
        )
        pytest.exit(fixed.message, returncode=EXIT_INTERRUPTED)
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        say(config, "remediation results", [fixed.message, *(o.line() for o in fixed.outcomes)])


def exit_status(session: pytest.Session, run: Run) -> None:
    """The tests judged the state after the fix; a confirmed action that failed fails the run all the same."""
    fixed = run.fix_report
    if fixed is None:
        return
    if fixed.interrupted:
        session.exitstatus = EXIT_INTERRUPTED
    elif fixed.applied and not fixed.ok and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
