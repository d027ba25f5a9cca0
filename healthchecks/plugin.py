"""pytest plugin: hooks and fixtures only. Options are in options.py, the run in run.py, outputs in outputs/,
the xdist hand-off in xdist.py and the fix step in fixers/session.py.

Loaded by the root conftest.py in a checkout and by the `pytest11` entry point when installed
(the entry point carries this module's name, so pytest never registers it twice).

The machine is read and judged once, on the controller, before any test runs; pytest-xdist workers get
the judged results through a file. Under --fix the plan is made, confirmed and applied once, on the
controller, after every check has run.

Every pytest run in the environment loads this module (the entry point): at load it imports only what registers
the options and hooks. The checks, the snapshot, the outputs' renderers and the fixers are imported once a hook
knows the run targets the health checks (`targets_healthchecks`, or a worker the controller handed them to).
"""

from __future__ import annotations

import gc
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from . import hookspecs, options, outputs
from .run import (
    FOUND,
    RUN,
    WORKDIR,
    command_hint,
    get_run,
    is_worker,
    selected_checks,
    targets_healthchecks,
)
from .text import for_people

if TYPE_CHECKING:  # a health-check run's modules, imported in the hooks that need them
    from .results import Finding
    from .run import Judged, Run
    from .settings import Settings
    from .snapshot import Snapshot

SETTINGS: pytest.StashKey[Settings] = pytest.StashKey()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser, outputs.OPTIONS)


def _fixing(config: pytest.Config) -> bool:
    return bool(config.getoption("healthchecks_fix"))


def _handed_checks(config: pytest.Config) -> bool:
    """On an xdist worker: whether the controller runs the health checks (it then hands their results over)."""
    return "healthchecks_judged" in getattr(config, "workerinput", {})


def _register(config: pytest.Config) -> None:
    """In a health-check run, on the controller and every worker; historic, so a conftest.py loaded later still
    registers (and is told it was late)."""
    from . import checks

    config.hook.pytest_healthchecks_register.call_historic(kwargs={"registry": checks.REGISTRY})


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "check(id): the health check (from healthchecks.checks) this test judges")
    if is_worker(config):
        if _handed_checks(config):
            _register(config)
        return
    if not targets_healthchecks(config):
        if _fixing(config):
            raise pytest.UsageError("agent-healthchecks: --fix applies to the health checks: "
                                    f"run them as {command_hint(config, ' --fix')}")
        return
    _configure_run(config)


def _configure_run(config: pytest.Config) -> None:
    """A run of the health checks, on the controller: its settings, its private directory and its hooks."""
    from . import xdist
    from .outputs import html

    _register(config)
    if config.pluginmanager.has_plugin("libtmux"):  # its fixtures test libtmux code, never the checks; a checkout
        config.pluginmanager.unregister(name="libtmux")  # blocks it in addopts, an install loads it by entry point
    for flag in ("--yes", "--dry-run", "--prune", "--kill-attached", "--allow-server-down"):
        if options.value(config, flag) and not _fixing(config):
            hint = command_hint(config, f" --fix {flag}")
            raise pytest.UsageError(f"agent-healthchecks: {flag} only applies with --fix ({hint})")
    config.stash[SETTINGS] = options.settings_from(config)
    for bounded in ("--keep-reports", "--keep-backups", "--backup-days"):  # a bad value is a usage error now
        options.value(config, bounded)
    config.stash[WORKDIR] = Path(tempfile.mkdtemp(prefix="agent-healthchecks-"))
    if _fixing(config):
        from fixers import session

        session.configure(config)
    if any(o.owns_stdout and options.value(config, o.option.name, outputs.OPTIONS) for o in outputs.OUTPUTS):
        config.pluginmanager.set_blocked("terminalreporter")
    if config.pluginmanager.hasplugin("html"):
        config.pluginmanager.register(html.HtmlHooks(config), "healthchecks-html")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(xdist.XdistHooks(fix_now if _fixing(config) else None), "healthchecks-xdist")


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session: pytest.Session) -> Generator[None, object, object]:
    """Read the machine once, after pytest-xdist has started its workers: they boot meanwhile."""
    result = yield
    config = session.config
    if is_worker(config) or SETTINGS not in config.stash:
        return result
    from . import xdist
    from .observe import look
    from .outputs import html
    from .run import Run

    settings, world = config.stash[SETTINGS], None
    if config.getoption("healthchecks_demo"):
        from .testing import demo

        world = demo.build(config.stash[WORKDIR] / "demo", era=options.value(config, "--demo-source"))
        settings = world.settings
    run = config.stash[RUN] = Run(look(settings), world)
    html.add_environment(config, run)
    xdist.hand_over(config)  # tests reach workers only after this hook: the files are complete
    # What exists now (the modules, the judged run) lives to the end of the run: frozen, it is no longer walked by
    # every collection, pytest's own at exit included (a tens of ms each); what the tests make is still collected.
    gc.freeze()
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Under --fix, once the tests of this run are known (serially here; under xdist when every worker has
    collected, see xdist.py), fix before any test runs: the tests then judge what the fix left."""
    config = session.config
    if is_worker(config):
        if _handed_checks(config):
            from . import xdist

            xdist.report_selection(config, session.items)
            gc.freeze()  # as on the controller: what a worker imported and collected lives to its end
    elif get_run(config) is not None and _fixing(config):
        fix_now(config, selected_checks(session.items))


def fix_now(config: pytest.Config, selected: set[str]) -> None:
    from fixers import session as fixing

    from . import xdist

    fixing.run_fix(config, config.stash[RUN], selected)
    xdist.hand_over(config)  # workers judge the state after the fix too


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = get_run(session.config)
    if run is None:
        return
    from .outputs import html, junit

    if _fixing(session.config):
        from fixers import session as fixing

        fixing.exit_status(session, run)
    for output in outputs.OUTPUTS:
        value = options.value(session.config, output.option.name, outputs.OPTIONS)
        extra = {o.dest: options.value(session.config, o.name, outputs.OPTIONS) for o in output.extra}
        code = output.write(run, value, session.config.invocation_params.dir, **extra)
        if code is not None and session.exitstatus != 130:  # Ctrl-C keeps its own status
            session.exitstatus = code
    junit.finish(session.config, run)  # tryfirst: before junitxml writes the file
    html.record(session.config, run)
    remember(run)


def remember(run: Run) -> None:
    """In this user's state directory: what this run saw as the agents', before and after a fix
    (healthchecks.sightings). The demo's world is gone after the run: nothing of it is remembered."""
    path = run.snapshot.settings.sightings
    if path is None or run.world is not None:
        return
    from . import sightings

    observations = {id(o): o for o in (run.observation, run.current)}.values()
    try:
        sightings.record(path, [s for o in observations for part in o.parts for s in sightings.seen(part.analysis)])
    except OSError as exc:  # a directory in its place, a full disk: said in one line; the run's verdict stands
        sys.stderr.write(f"agent-healthchecks: could not record what this run saw in the panes in {path}: {exc}\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    """End what the run started (the demo world, its private files); keep its report as latest.html."""
    if is_worker(config) or WORKDIR not in config.stash:
        return
    run = get_run(config)
    if run is not None and run.world is not None:
        run.world.teardown()
    shutil.rmtree(config.stash[WORKDIR], ignore_errors=True)
    if run is not None:
        from .outputs import html

        html.finish(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if (run := get_run(config)) is not None:
        from .outputs import terminal

        terminal.terminal_summary(terminalreporter, run)


@pytest.fixture(scope="session")
def hc_judged(request: pytest.FixtureRequest) -> Judged:
    """Every check's result on this run's snapshot, judged once on the controller."""
    from . import xdist

    return xdist.shared(request.config, "judged")


@pytest.fixture(scope="session")
def hc_snapshot(request: pytest.FixtureRequest) -> Snapshot:
    """The read-only snapshot every check of this run judges (for checks of your own)."""
    from . import xdist

    return xdist.shared(request.config, "snapshot")


class Findings(list["Finding"]):  # (by name: results.py and the programs table are a health-check run's)
    """A check's failing findings; printed one per line."""

    def __repr__(self) -> str:
        return f"{len(self)} finding(s):\n" + "\n".join("  " + for_people(f.line()) for f in self)


@pytest.fixture
def findings(request: pytest.FixtureRequest, hc_judged: Judged) -> Findings:
    """The failing findings of the check named by the test's `check` marker.

    A check whose needs are unmet is skipped (broken registry) or errors (tmux unreachable):
    judging on missing facts would report healthy agents as ghosts.
    """
    marker = request.node.get_closest_marker("check")
    if marker is None:
        pytest.fail("a health-check test needs @pytest.mark.check(<check id>)", pytrace=False)
    result = hc_judged.results.get(marker.args[0])
    if result is None:
        pytest.fail(f"no check {marker.args[0]!r} was judged: add it in a `pytest_healthchecks_register` hook "
                    "(conftest.py or a plugin), so it is known before the machine is read", pytrace=False)
    from .outputs import junit

    junit.record(request.node, result, hc_judged.snapshot_id)
    if result.status == "skip":
        pytest.skip(for_people(result.reason))
    if result.status == "error":
        pytest.fail(for_people(result.reason), pytrace=False)
    if result.waived and not result.failing:  # only what a person acknowledged: xfail, with their reasons
        pytest.xfail("; ".join(for_people(f.line()) for f in result.waived))
    failing = request.node.stash[FOUND] = Findings(result.failing)
    return failing


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing check reports its findings, one line each, instead of a traceback."""
    result = yield
    found = item.stash.get(FOUND, None)
    if found and result.when == "call" and result.failed:
        result.longrepr = "\n".join(for_people(f.line()) for f in found)
    return result
