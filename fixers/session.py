"""The `--fix` step of a pytest session: which checks ran, how a person is told and asked, Ctrl-C, the exit status."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from healthchecks.options import value
from healthchecks.outputs.junit import SELECTED
from healthchecks.run import Run

from .apply import Options
from .confirm import ask
from .plan import Plan
from .run import FixReport, fix

EXIT_INTERRUPTED = 130  # what a shell reports for a program ended by Ctrl-C
OPTIONS = pytest.StashKey[Options]()
SELECTION = pytest.StashKey["Selection"]()


class Selection:
    """Which checks this run ran, serially or in any xdist worker (their reports reach the controller):
    `-k`, `-m` and node ids limit the fix to those."""

    def __init__(self) -> None:
        self.checks: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.checks.update(k.removeprefix(SELECTED) for k in report.keywords if k.startswith(SELECTED))


def fixing(config: pytest.Config) -> bool:
    return value(config, "--fix") or value(config, "--dry-run")


def configure(config: pytest.Config) -> None:
    """Read the fix's options (a bad value is a usage error before anything runs) and start noting the selection."""
    config.stash[OPTIONS] = Options(
        prune=value(config, "--prune"),
        lock_timeout=value(config, "--lock-timeout"),
        kill_attached=value(config, "--kill-attached"),
        allow_server_down=value(config, "--allow-server-down"),
        tmux_timeout=value(config, "--tmux-timeout"),
    )
    config.stash[SELECTION] = Selection()
    config.pluginmanager.register(config.stash[SELECTION], "healthchecks-selection")


def say(config: pytest.Config, title: str, lines: list[str]) -> None:
    """To the terminal report, or to stderr when another output (--status-line) owns stdout: what the fix
    plans and does always reaches a person."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line("")  # under xdist the progress line is still open
        reporter.write_sep("=", title)
        for line in lines:
            reporter.write_line(line)
    else:
        sys.stderr.write("".join(f"{line}\n" for line in [f"== {title} ==", *lines]))
        sys.stderr.flush()


def run_fix(session: pytest.Session, run: Run) -> None:
    """Plan, confirm once, act, verify; the exit status then tells the after-state (130 after Ctrl-C)."""
    config = session.config

    def confirm(plan: Plan) -> tuple[bool, str]:
        if value(config, "--yes"):
            return True, "confirmed by --yes"
        return ask(plan.lines(), len(plan.actions))

    dry_run = value(config, "--dry-run")
    options = dataclasses.replace(config.stash[OPTIONS], selected=frozenset(config.stash[SELECTION].checks))
    fixed = run.fix_report = FixReport(Plan())
    try:
        fix(run.observation, run.snapshot.settings, options, dry_run=dry_run, confirm=confirm,
            show=lambda lines: say(config, "remediation plan", lines), report=fixed)
    except KeyboardInterrupt:
        fixed.interrupted = True
        done = sum(1 for o in fixed.outcomes if o.status == "done")
        fixed.message = (
            f"interrupted: {done} action(s) done, {len(fixed.plan.actions) - done} not done"
            if fixed.applied
            else "interrupted at the prompt: nothing was changed"
        )
        session.exitstatus = EXIT_INTERRUPTED
    else:
        if fixed.applied:
            session.exitstatus = pytest.ExitCode.OK if fixed.ok else pytest.ExitCode.TESTS_FAILED
        elif not dry_run and fixed.plan.actions:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        say(config, "remediation results", [fixed.message, *(o.line() for o in fixed.outcomes)])
