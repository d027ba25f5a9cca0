"""pytest plugin: options, the once-per-run snapshot, the `findings` fixture, and the run's outputs.

Loaded by the root conftest.py in a checkout and by the `pytest11` entry point when installed
(the entry point carries this module's name, so pytest never registers it twice).

The snapshot is taken once, on the controller, before any test runs; pytest-xdist workers get
the same snapshot through a file, so every worker judges the same facts and nothing on the
machine is read more than once per run. Under --fix the plan is made, confirmed and applied
once, on the controller, after every check has run.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from importlib.util import find_spec
from pathlib import Path

import pytest

from . import checks, outputs, report
from .analysis import Analysis
from .checks import CHECKS, Finding
from .render import FINDINGS_HEADER, finding_rows, html_table
from .settings import (
    DEFAULT_CLAUDE_MATCH,
    DEFAULT_GRACE,
    DEFAULT_PREFIX,
    DEFAULT_TMUX_TIMEOUT,
    DEFAULT_WORKSPACE,
    Settings,
)
from .snapshot import Snapshot, collect
from .summary import Figures, figures

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass
class Run:
    """One health-check run: what was read, how it was judged, and what the run itself started."""

    snapshot: Snapshot
    world: object | None = None
    fix_report: object | None = None  # fixers.run.FixReport, under --fix or --dry-run

    @cached_property
    def analysis(self) -> Analysis:
        return Analysis(self.snapshot)

    @cached_property
    def results(self) -> dict[str, list[Finding] | tuple[str, str]]:
        return checks.judge(self.analysis)

    @cached_property
    def figures(self) -> Figures:
        return figures(self.analysis, self.results)

    @property
    def final(self) -> tuple[dict, Figures]:
        """The state the run leaves the machine in: after the fix when one was applied."""
        fixed = self.fix_report
        if fixed is not None and fixed.after_results is not None:
            return fixed.after_results, fixed.after
        return self.results, self.figures

    @property
    def snapshot_id(self) -> str:
        """The same in every xdist worker: they all judge the controller's one snapshot."""
        return f"{self.snapshot.taken_at:.6f}"

    def info(self) -> list[Finding]:
        return [f for r in self.results.values() if isinstance(r, list) for f in r if f.severity == "info"]

    @property
    def judged(self) -> Judged:
        return Judged(self.results, self.snapshot_id)


@dataclass(frozen=True)
class Judged:
    """What a test needs: every check's result, and the id of the one snapshot they were judged on."""

    results: dict[str, list[Finding] | tuple[str, str]]
    snapshot_id: str


RUN = pytest.StashKey[Run]()
WORKDIR = pytest.StashKey[Path]()  # private temporary directory: the files for xdist workers, the demo world
KEEP_REPORTS = pytest.StashKey[int]()
SHARED = pytest.StashKey[bool]()  # xdist workers were started: hand them the controller's results
SETTINGS = pytest.StashKey[Settings]()
FOUND = pytest.StashKey[list[Finding]]()
FIX_OPTIONS = pytest.StashKey[object]()
SELECTED = pytest.StashKey["Selection"]()  # check ids of the tests this run ran (-k, -m and node ids limit the fix)

# (option, ini name, env var, default, help); each is also an ini option.
OPTIONS = [
    (
        "--workspace",
        "healthchecks_workspace",
        "AGENT_WORKSPACE",
        str(DEFAULT_WORKSPACE),
        "orchestrator workspace; registry at DIR/registry/GLOBAL_REGISTRY.json, task registries at "
        "DIR/TASK-*/AGENT_REGISTRY.json (env AGENT_WORKSPACE; default ./.agent-workspace)",
    ),
    (
        "--session-prefix",
        "healthchecks_session_prefix",
        None,
        DEFAULT_PREFIX,
        "name prefix of agent tmux sessions (default agent_)",
    ),
    (
        "--claude-match",
        "healthchecks_claude_match",
        None,
        DEFAULT_CLAUDE_MATCH,
        "regex searched in a process's name and command line to decide it is Claude (default catches claude, "
        "node …/@anthropic-ai/claude-code/… and npx @anthropic-ai/claude-code)",
    ),
    (
        "--grace",
        "healthchecks_grace",
        None,
        str(DEFAULT_GRACE),
        "seconds: an agent deployed or a session created less than this ago is starting, not faulty (default 60)",
    ),
    (
        "--tmux-timeout",
        "healthchecks_tmux_timeout",
        None,
        str(DEFAULT_TMUX_TIMEOUT),
        "seconds to wait for a tmux server before calling it unreachable (default 5)",
    ),
    (
        "--registry-tz",
        "healthchecks_registry_tz",
        None,
        "",
        "IANA time zone the orchestrator writes its naive timestamps in (default: this machine's local zone, "
        "which is what the orchestrator uses when it runs here)",
    ),
    (
        "--lock-timeout",
        "healthchecks_lock_timeout",
        None,
        "10",
        "seconds --fix waits for the orchestrator's lock on a registry file before giving up on it (default 10)",
    ),
    (
        "--report-dir",
        "healthchecks_report_dir",
        None,
        "reports",
        "where the HTML report goes: a timestamped file plus latest.html (default reports/)",
    ),
    (
        "--keep-reports",
        "healthchecks_keep_reports",
        None,
        "100",
        "how many timestamped HTML reports to keep in the report directory; older ones are deleted "
        "(0 keeps all; default 100)",
    ),
    (
        "--findings-json",
        "healthchecks_findings_json",
        None,
        "",
        "write every finding (check, severity, entity, reason, snapshot time) and the summary figures as JSON",
    ),
    (
        "--metrics-file",
        "healthchecks_metrics_file",
        None,
        "",
        "write Prometheus text-format gauges atomically (for node-exporter's textfile collector)",
    ),
]
FLAGS = [
    (
        "--demo",
        "healthchecks_demo",
        "build the built-in demo world (a private tmux server, Claude stand-ins, "
        "registries reproducing the seed incident), check it, and tear it down afterwards",
    ),
    (
        "--fix",
        "healthchecks_fix",
        "after the checks, build one remediation plan, show it, ask once for a typed yes, "
        "apply it with every guard, then check again; exit 0 only if every check then passes",
    ),
    ("--yes", "healthchecks_yes", "with --fix: apply the plan without asking"),
    (
        "--kill-attached",
        "healthchecks_kill_attached",
        "with --fix: also kill zombie or leaked sessions a person is attached to (their terminal is thrown out)",
    ),
    (
        "--allow-server-down",
        "healthchecks_allow_server_down",
        "with --fix: change agents' entries even though a checked tmux server is not running "
        "(by default that looks like a wrong --tmux-socket or user, and only the processes are fixed)",
    ),
    ("--dry-run", "healthchecks_dry_run", "print the remediation plan and change nothing"),
    (
        "--prune",
        "healthchecks_prune",
        "with --fix: remove entries without a live session from the registries "
        "(archived first to <workspace>/registry/archive/*.jsonl) instead of marking ghosts terminated",
    ),
    (
        "--status-line",
        "healthchecks_status_line",
        "print only a Nagios-style status line (OK/CRITICAL/UNKNOWN "
        "with counts) and exit 0/2/3, for monitoring systems",
    ),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agent-healthchecks", "agent fleet health checks (agent-healthchecks)")
    for opt, ini, _env, _default, help_ in OPTIONS:
        group.addoption(opt, dest=ini, default=None, metavar=opt.strip("-").split("-")[-1].upper(), help=help_)
        parser.addini(ini, help_)
    group.addoption(
        "--tmux-socket",
        dest="healthchecks_tmux_sockets",
        action="append",
        default=None,
        metavar="NAME_OR_PATH",
        help="tmux server to check, repeatable: a value with / is a socket "
        "path (tmux -S), else a socket name (tmux -L); default: the default server",
    )
    parser.addini("healthchecks_tmux_sockets", "tmux servers to check (one per line)", type="linelist")
    for opt, dest, help_ in FLAGS:
        group.addoption(opt, dest=dest, action="store_true", help=help_)


def _value(config: pytest.Config, ini: str, env: str | None, default: str) -> str:
    """Command line, then environment, then ini file, then default."""
    cli = config.getoption(ini)
    if cli is not None:
        return cli
    if env and os.environ.get(env):
        return os.environ[env]
    return config.getini(ini) or default


def _path(config: pytest.Config, value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def settings_from(config: pytest.Config) -> Settings:
    values = {ini: _value(config, ini, env, default) for _, ini, env, default, _ in OPTIONS}
    sockets = config.getoption("healthchecks_tmux_sockets") or config.getini("healthchecks_tmux_sockets") or []
    try:
        return Settings(
            workspace=_path(config, values["healthchecks_workspace"], config.invocation_params.dir),
            tmux_sockets=tuple(sockets),
            session_prefix=values["healthchecks_session_prefix"],
            claude_match=values["healthchecks_claude_match"],
            grace=float(values["healthchecks_grace"]),
            tmux_timeout=float(values["healthchecks_tmux_timeout"]),
            registry_tz=values["healthchecks_registry_tz"],
        )
    except ValueError as exc:
        raise pytest.UsageError(f"agent-healthchecks: invalid option: {exc}") from None


def fix_options(config: pytest.Config):
    from fixers.apply import Options

    try:
        lock_timeout = float(_value(config, "healthchecks_lock_timeout", None, "10"))
        if lock_timeout <= 0:
            raise ValueError("must be > 0")
    except ValueError as exc:
        raise pytest.UsageError(f"agent-healthchecks: invalid --lock-timeout: {exc}") from None
    return Options(
        prune=config.getoption("healthchecks_prune"),
        lock_timeout=lock_timeout,
        kill_attached=config.getoption("healthchecks_kill_attached"),
        allow_server_down=config.getoption("healthchecks_allow_server_down"),
        tmux_timeout=float(_value(config, "healthchecks_tmux_timeout", None, str(DEFAULT_TMUX_TIMEOUT))),
    )


def report_dir(config: pytest.Config) -> Path:
    return _path(config, _value(config, "healthchecks_report_dir", None, "reports"), config.rootpath)


def keep_reports(config: pytest.Config) -> int:
    try:
        keep = int(_value(config, "healthchecks_keep_reports", None, "100"))
        if keep < 0:
            raise ValueError("must be >= 0")
    except ValueError as exc:
        raise pytest.UsageError(f"agent-healthchecks: invalid --keep-reports: {exc}") from None
    return keep


def targets_healthchecks(config: pytest.Config) -> bool:
    """Whether this run collects the health checks (and not only, say, the project's own tests)."""
    if config.getoption("healthchecks_demo"):
        return True
    for arg in config.args:
        target = arg.split("::")[0]
        spec = _find_spec(target) if config.option.pyargs else None
        path = Path(spec.origin).parent if spec and spec.origin else config.invocation_params.dir / target
        path = path.resolve()
        if path == PACKAGE_DIR or PACKAGE_DIR in path.parents or path in PACKAGE_DIR.parents:
            return True
    return False


def _find_spec(name: str):
    try:
        return find_spec(name)
    except (ImportError, ValueError):
        return None


def fixing(config: pytest.Config) -> bool:
    return bool(config.getoption("healthchecks_fix") or config.getoption("healthchecks_dry_run"))


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def get_run(config: pytest.Config) -> Run | None:
    return None if is_worker(config) else config.stash.get(RUN, None)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id): the health check (from healthchecks.checks) this test judges")
    if is_worker(config):
        return
    if not targets_healthchecks(config):
        if fixing(config):
            raise pytest.UsageError(
                "agent-healthchecks: --fix/--dry-run apply to the health checks: "
                "run them as `pytest healthchecks --fix`"
            )
        return
    config.stash[SETTINGS] = settings_from(config)
    config.stash[KEEP_REPORTS] = keep_reports(config)
    config.stash[WORKDIR] = Path(tempfile.mkdtemp(prefix="agent-healthchecks-"))
    if fixing(config):
        config.stash[FIX_OPTIONS] = fix_options(config)
        config.stash[SELECTED] = Selection()
        config.pluginmanager.register(config.stash[SELECTED], "healthchecks-selection")
    if config.getoption("healthchecks_status_line"):
        config.pluginmanager.set_blocked("terminalreporter")  # the status line is the whole output
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(report.HtmlHooks(get_run), "healthchecks-html")
        if not config.option.htmlpath:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            config.option.htmlpath = str(report_dir(config) / report.REPORT_NAME.format(stamp=stamp, pid=os.getpid()))
            config.option.self_contained_html = True
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks(), "healthchecks-xdist")


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session):
    """Read the machine once, after pytest-xdist has started its workers: they boot meanwhile."""
    result = yield
    config = session.config
    if is_worker(config) or SETTINGS not in config.stash:
        return result
    workdir, settings, world = config.stash[WORKDIR], config.stash[SETTINGS], None
    if config.getoption("healthchecks_demo"):
        from . import demo

        world = demo.build(workdir / "demo")
        settings = world.settings
    run = config.stash[RUN] = Run(collect(settings), world)
    report.add_environment(config, run)
    if config.stash.get(SHARED, False):  # tests reach workers only after this hook: the files are complete
        _dump(workdir / "judged.pickle", run.judged)
        _dump(workdir / "snapshot.pickle", run.snapshot)
    return result


def _dump(path: Path, value: object) -> None:
    path.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = get_run(session.config)
    if run is None:
        return
    if fixing(session.config) and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
        _fix(session, run)  # not on an interrupted or broken run
    _write_outputs(session, run)


class Selection:
    """Which checks this run ran, serially or in any xdist worker (their reports reach the controller):
    `-k`, `-m` and node ids limit the fix to those."""

    def __init__(self) -> None:
        self.checks: set[str] = set()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.checks.update(value for name, value in report.user_properties if name == "check")


EXIT_INTERRUPTED = 130  # what a shell reports for a program ended by Ctrl-C


def _say(config: pytest.Config, title: str, lines: list[str]) -> None:
    """To the terminal report, or to stderr when another output mode (--status-line) owns stdout:
    what the fix plans and does always reaches a person."""
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


def _fix(session: pytest.Session, run: Run) -> None:
    """Plan, confirm once, act, verify; the exit status then tells the after-state."""
    from fixers.confirm import ask
    from fixers.plan import Plan
    from fixers.run import FixReport, fix

    config = session.config

    def confirm(plan) -> tuple[bool, str]:
        if config.getoption("healthchecks_yes"):
            return True, "confirmed by --yes"
        return ask(plan.lines(), len(plan.actions))

    dry_run = config.getoption("healthchecks_dry_run")
    options = dataclasses.replace(config.stash[FIX_OPTIONS], selected=frozenset(config.stash[SELECTED].checks))
    fixed = run.fix_report = FixReport(Plan())
    try:
        fix(
            run.analysis,
            run.results,
            run.snapshot.settings,
            options,
            dry_run=dry_run,
            confirm=confirm,
            show=lambda lines: _say(config, "remediation plan", lines),
            report=fixed,
        )
    except KeyboardInterrupt:
        fixed.interrupted = True
        done = sum(1 for o in fixed.outcomes if o.status == "done")
        fixed.message = (
            f"interrupted: {done} action(s) done, {len(fixed.plan.actions) - done} not done"
            if fixed.applied
            else "interrupted at the prompt: nothing was changed"
        )
        session.exitstatus = EXIT_INTERRUPTED
        if config.pluginmanager.get_plugin("terminalreporter") is None:
            _say(config, "remediation results", [fixed.message, *(o.line() for o in fixed.outcomes)])
        return
    if config.pluginmanager.get_plugin("terminalreporter") is None:
        _say(config, "remediation results", [fixed.message, *(o.line() for o in fixed.outcomes)])
    if fixed.applied:
        session.exitstatus = pytest.ExitCode.OK if fixed.ok else pytest.ExitCode.TESTS_FAILED
    elif not dry_run and fixed.plan.actions:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _write_outputs(session: pytest.Session, run: Run) -> None:
    config = session.config
    results, figs = run.final
    base = config.invocation_params.dir
    if value := _value(config, "healthchecks_findings_json", None, ""):
        settings = run.snapshot.settings
        document = outputs.findings_document(
            results,
            figs,
            run.snapshot.taken_at,
            {
                "workspace": str(settings.workspace),
                "tmux_sockets": list(settings.tmux_sockets),
                "session_prefix": settings.session_prefix,
                "grace": settings.grace,
            },
        )
        if run.fix_report is not None:
            document["fix"] = {
                "message": run.fix_report.message,
                "applied": run.fix_report.applied,
                "interrupted": run.fix_report.interrupted,
                "before": asdict(run.fix_report.before),
                "outcomes": [
                    {"action": o.action.describe(), "kind": o.action.kind, "status": o.status, "detail": o.detail}
                    for o in run.fix_report.outcomes
                ],
            }
        outputs.write_json(_path(config, value, base), document)
    if value := _value(config, "healthchecks_metrics_file", None, ""):
        text = outputs.metrics_text(results, figs, run.snapshot.duration, run.snapshot.taken_at)
        outputs.write_atomic_text(_path(config, value, base), text)
    if config.getoption("healthchecks_status_line"):
        line, code = outputs.status_line(results)
        print(line, flush=True)
        if session.exitstatus != EXIT_INTERRUPTED:
            session.exitstatus = code


def pytest_unconfigure(config: pytest.Config) -> None:
    """End what the run started (the demo world, its private files); keep its report as latest.html."""
    if is_worker(config) or WORKDIR not in config.stash:
        return
    run = get_run(config)
    if run is not None and run.world is not None:
        run.world.teardown()
    shutil.rmtree(config.stash[WORKDIR], ignore_errors=True)
    html = getattr(config.option, "htmlpath", None)
    if run is not None and html and Path(html).is_file():
        shutil.copyfile(html, report_dir(config) / "latest.html")
        report.prune_reports(report_dir(config), config.stash[KEEP_REPORTS])


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if (run := get_run(config)) is not None:
        report.terminal_summary(terminalreporter, run)


class XdistHooks:
    """Hand the controller's one judged snapshot to every worker instead of letting each take its own."""

    def pytest_configure_node(self, node) -> None:
        config = node.config
        if WORKDIR not in config.stash:
            return
        config.stash[SHARED] = True
        node.workerinput["healthchecks_judged"] = str(config.stash[WORKDIR] / "judged.pickle")
        node.workerinput["healthchecks_snapshot"] = str(config.stash[WORKDIR] / "snapshot.pickle")


def _shared(config: pytest.Config, name: str):
    """On the controller (or without xdist), the run's own value; on a worker, the controller's, read once."""
    if is_worker(config):
        if path := config.workerinput.get(f"healthchecks_{name}"):
            return pickle.loads(Path(path).read_bytes())
    elif (run := config.stash.get(RUN, None)) is not None:
        return getattr(run, name)
    pytest.fail("agent-healthchecks: no snapshot was taken; run the checks as `pytest healthchecks`", pytrace=False)


@pytest.fixture(scope="session")
def hc_judged(request: pytest.FixtureRequest) -> Judged:
    """Every check's result on this run's snapshot, judged once on the controller."""
    return _shared(request.config, "judged")


@pytest.fixture(scope="session")
def hc_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """The read-only snapshot every check of this run judges (for checks of your own)."""
    return _shared(request.config, "snapshot")


class Findings(list):
    """A check's failing findings; printed one per line."""

    def __repr__(self) -> str:
        return f"{len(self)} finding(s):\n" + "\n".join("  " + f.line() for f in self)


@pytest.fixture
def findings(request: pytest.FixtureRequest, hc_judged: Judged) -> Findings:
    """The failing findings of the check named by the test's `check` marker.

    A check whose needs are unmet is skipped (broken registry) or errors (tmux unreachable):
    judging on missing facts would report healthy agents as ghosts.
    """
    marker = request.node.get_closest_marker("check")
    if marker is None or marker.args[0] not in CHECKS:
        pytest.fail("a health-check test needs @pytest.mark.check(<check id>)", pytrace=False)
    result = hc_judged.results[marker.args[0]]
    request.node.user_properties += [("check", marker.args[0]), ("snapshot", hc_judged.snapshot_id)]
    if isinstance(result, tuple):
        kind, reason = result
        if kind == "skip":
            pytest.skip(reason)
        pytest.fail(reason, pytrace=False)
    failing = Findings(f for f in result if f.severity == "fail")
    for f in failing:
        request.node.user_properties += [("finding", f.line()), ("entity", f.entity)]
    request.node.stash[FOUND] = failing
    return failing


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failing check reports its findings, one line each, instead of a traceback."""
    result = yield
    found = item.stash.get(FOUND, None)
    if found and result.when == "call" and result.failed:
        result.longrepr = "\n".join(f.line() for f in found)
        try:
            from pytest_html import extras
        except ImportError:
            return result
        result.extras = [
            *getattr(result, "extras", []),
            extras.html(html_table(finding_rows(found), FINDINGS_HEADER, "hc-findings")),
        ]
    return result
