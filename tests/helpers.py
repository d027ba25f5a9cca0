"""Helpers for the project's own tests: judge real worlds in-process or through `pytest healthchecks`."""

from __future__ import annotations

import dataclasses
import os
import pty
import re
import secrets
import select
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from fixers.apply import Options
from fixers.plan import Plan, make_plan
from fixers.run import FixReport, fix
from healthchecks.checks import ACCOUNTED_FOR
from healthchecks.observe import Observation, observe
from healthchecks.programs import CLAUDE
from healthchecks.results import Results
from healthchecks.settings import Settings
from healthchecks.testing import real_claude, real_programs

REPO = Path(__file__).resolve().parents[1]


def judge(settings: Settings) -> Results:
    return observe(settings).results


def failing(results: dict) -> set[tuple[str, str]]:
    """(check, entity) for every failing finding; unmet checks show as (check, 'skip'|'error')."""
    out = set()
    for check_id, result in results.items():
        if not result.judged:
            out.add((check_id, result.status))
        else:
            out |= {(check_id, f.entity) for f in result.failing}
    return out


def info(results: dict) -> set[tuple[str, str]]:
    """(check, entity) of every information finding; accounted_for's on an agent program other than Claude (a world's
    Claude is its stand-ins) are left out: another test's real programs may run anywhere on this machine meanwhile."""
    return {(c, f.entity) for c, r in results.items() for f in r.info if not other_program(c, f.reason)}


def other_program(check: str, reason: str) -> bool:
    return check == ACCOUNTED_FOR and not reason.startswith(CLAUDE.name)


def absent_socket() -> str:
    """A private tmux socket name with no server behind it."""
    return f"hc-absent-{secrets.token_hex(4)}"


def settings_args(settings: Settings) -> list[str]:
    args = [
        "--workspace",
        str(settings.workspace),
        "--claude-match",
        settings.claude_match,
        "--claude-exe",
        settings.claude_exe,
        "--grace",
        str(settings.grace),
        "--tmux-timeout",
        str(settings.tmux_timeout),
    ]
    for socket in settings.tmux_sockets:
        args += ["--tmux-socket", socket]
    return args


def run_health(
    tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `pytest healthchecks` as an operator would, in its own session (no controlling terminal).

    Bytecode writing is allowed so pytest caches its assertion rewriting (0.8 s a run instead of 2.5 s),
    and hypothesis's plugin, which an operator's install does not have, is left out.
    """
    base_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PYTEST_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "healthchecks",
            "-p",
            "no:hypothesispytest",
            "--report-dir",
            str(tmp_path / "reports"),
            *args,
        ],
        cwd=REPO,
        env={**base_env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        start_new_session=True,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def junit_outcomes(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """test name -> (outcome, finding lines) from a JUnit XML file (the default xunit2 family)."""
    result = {}
    for case in ET.parse(path).iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        failure = case.find("failure")  # a failing check's message: its findings, one a line
        lines = tuple(sorted(failure.text.splitlines())) if failure is not None and failure.text else ()
        result[case.get("name")] = (outcome, lines)
    return result


def registry_bytes(workspace: Path) -> dict[str, bytes]:
    """Every registry file's exact bytes, to prove a run changed nothing."""
    paths = [workspace / "registry" / "GLOBAL_REGISTRY.json", *sorted(workspace.glob("TASK-*/AGENT_REGISTRY.json"))]
    return {str(p): p.read_bytes() for p in paths if p.exists()}


def section(output: str, title: str) -> list[str]:
    """The lines of one `==== title ====` / `---- title ----` section of pytest's terminal output."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if f" {title} " in line and line.strip("=- ") == title)
    header = re.compile(r"^([-=])\1+ \w.* \1+$|^- Generated|^\S+\.py [.FEsxX]*\s+\[")  # or a test file's progress
    end = next((i for i in range(start + 1, len(lines)) if header.match(lines[i])), len(lines))
    return lines[start + 1 : end]


def fix_in_process(settings: Settings, lock_timeout: float | None = None, **options) -> FixReport:
    """--fix --yes, in this process: plan, apply with every guard, judge again."""
    if lock_timeout is not None:
        settings = dataclasses.replace(settings, lock_timeout=lock_timeout)
    return fix(
        observe(settings),
        settings,
        Options(**options),
        dry_run=False,
        confirm=lambda plan: (True, "test"),
        show=lambda lines: None,
    )


def spawn(world, argv: list[str], cwd: Path, **kwargs) -> psutil.Process:
    """Start a process of the world's (ended by its teardown) and wait until it ignores SIGHUP like Claude."""
    before = {p.pid for p in world.standins(starting=True)}
    popen = subprocess.Popen(argv, cwd=cwd, start_new_session=True, stdin=kwargs.pop("stdin", subprocess.DEVNULL),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    world.popen.append(popen)
    world.wait_ready(len(before) + 1, 10)
    return next(p for p in world.standins() if p.pid not in before)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def plan_now(settings: Settings, **options) -> tuple[Observation, Plan]:
    """Look, and plan what --fix would do now (nothing is done)."""
    seen = observe(settings)
    return seen, make_plan(seen.analysis, seen.results, Options(**options))


def first_line(proc: subprocess.Popen, timeout: float = 30) -> str:
    """The first line a child prints (its "I am ready"), within ``timeout``: otherwise the child is killed and the
    test fails. At the child's end it is "" (the caller's assertion then says so)."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"child {proc.args!r} printed nothing within {timeout:g} s; killed", pytrace=False)
    return proc.stdout.readline()


def ended(proc: subprocess.Popen, timeout: float) -> int:
    """The child's exit code once it ends within ``timeout``; otherwise it is killed and the test fails."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"child {proc.args!r} still running after {timeout:g} s; killed", pytrace=False)


class Writer:
    """An orchestrator-style writer in another process (``script`` gets the file, a log of what it wrote and a
    stop file): started, then stopped and checked, by ``with``."""

    def __init__(self, script: str, path: Path, tmp_path: Path) -> None:
        self.log, self.stop = tmp_path / "written", tmp_path / "stop"
        self.proc = subprocess.Popen([sys.executable, "-c", script, str(path), str(self.log), str(self.stop)],
                                     stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.touch()
        assert ended(self.proc, 30) == 0, self.proc.stderr.read()

    def written(self) -> list[str]:
        return self.log.read_text().split()


def on_terminal(settings: Settings, reports: Path, *args: str, when: str, keys: bytes, early: bytes = b"",
                delay: float = 0.0, ends_within: float = 60.0, env: dict | None = None) -> tuple[int, str]:
    """Run `pytest healthchecks` on a pseudo-terminal, as a person would: type ``early`` at once (before anything is
    shown), and ``keys`` (after ``delay``) once ``when`` is on the screen. Returns (exit code, all it showed).

    Bounded: ``when`` must show within 120 s and the run must end within ``ends_within`` s of the keys; otherwise
    the child is killed and the test fails saying which step it was stuck at and what it had shown.
    """
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TMUX", "PYTEST_"))}, **(env or {})}
    argv = [sys.executable, "-m", "pytest", "healthchecks", "-p", "no:hypothesispytest", "--report-dir",
            str(reports), *settings_args(settings), *args]
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(REPO)
        # A person's shell starts the run with Ctrl-C's signals at their defaults; a test run started in the
        # background of a script (`cmd &` ignores SIGINT and SIGQUIT there) must not hand its children that.
        for sig in (signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.execve(sys.executable, argv, env)
    try:
        if early:
            os.write(fd, early)
        screen = _Screen(fd)
        shown = screen.until(lambda: when.encode() in screen.out, time.monotonic() + 120)
        if not shown and not screen.closed:
            _fail_stuck(pid, f"{when!r} was not shown within 120 s", screen.out)
        if shown:  # a run that ended before showing it is returned as it is, for the test to judge
            time.sleep(delay)
            os.write(fd, keys)
        deadline = time.monotonic() + ends_within
        screen.until(lambda: False, deadline)  # everything it shows, until it closes the terminal
        status = _reaped(pid, deadline)
        if status is None:
            _fail_stuck(pid, f"still running {ends_within:g} s after {keys!r} was typed", screen.out)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), screen.out.decode(errors="replace")


class _Screen:
    """What a child shows on its pseudo-terminal, read as it comes."""

    def __init__(self, fd: int) -> None:
        self.fd, self.out, self.closed = fd, b"", False

    def until(self, done, deadline: float) -> bool:
        """Read until ``done()``, the child closes the terminal, or the deadline; whether ``done()`` held."""
        while not done() and not self.closed and time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                self.closed = not chunk
                self.out += chunk
        return done()


def _reaped(pid: int, deadline: float) -> int | None:
    """The child's wait status once it has exited, or None if it is still running at the deadline."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _fail_stuck(pid: int, what: str, out: bytes) -> None:
    """Kill the child this test started (and reap it), then fail the test saying where it hung."""
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"`pytest healthchecks` on a terminal (pid {pid}) hung: {what}; it showed:\n"
                f"{out.decode(errors='replace')[-3000:]}", pytrace=False)


def installed_claude() -> Path:
    """The real Claude Code, installed (cached) for a test; the test skips saying why when it cannot be had, or
    fails where it is required (HC_REAL_CLAUDE=required, as in CI)."""
    try:
        return real_claude.install()
    except real_claude.Unavailable as exc:
        if os.environ.get("HC_REAL_CLAUDE") == "required":
            pytest.fail(f"the real Claude Code is required here: {exc}")
        pytest.skip(f"the real Claude Code is not available: {exc}")


def installed_program(program: real_programs.Program) -> Path:
    """A real agent program, installed (cached) for a test; the test skips saying why when it cannot be had, or
    fails where it is required (HC_REAL_PROGRAMS=required, as in CI)."""
    try:
        return real_programs.install(program)
    except real_programs.Unavailable as exc:
        if os.environ.get("HC_REAL_PROGRAMS") == "required":
            pytest.fail(f"{program.requirement} is required here: {exc}")
        pytest.skip(f"{program.requirement} is not available: {exc}")
