"""The HTML report (pytest-html): the run's sections, its environment, where it goes, how many are kept."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Generator
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..options import report_dir, value
from ..run import FOUND, get_run
from ..text import for_html as escape
from ..text import for_people
from . import history, picture
from .render import FINDINGS_HEADER, finding_rows, fix_sections, html_table, verdict

if TYPE_CHECKING:
    from ..run import Run

REPORT_NAME = "healthchecks-{stamp}-{pid}.html"
REPORT_PATTERN = re.compile(r"healthchecks-\d{8}-\d{6}-\d+\.html")
PACKAGES = (
    "agent-healthchecks",
    "pytest",
    "pytest-html",
    "pytest-xdist",
    "psutil",
    "libtmux",
    "jsonschema",
    "filelock",
)


STYLE = """<style>
table.hc-summary, table.hc-info, table.hc-findings, table.hc-before-after, table.hc-fix, table.hc-env {
  border-collapse: collapse; margin: 4px 0 12px; }
.hc-report td, .hc-report th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; color: #222;
  white-space: normal; overflow-wrap: anywhere; vertical-align: top; }
table.hc-summary td:first-child, table.hc-before-after td:first-child { font-weight: bold; }
.hc-verdict { padding: 10px 14px; margin: 6px 0 14px; border-radius: 4px; color: #fff; font-size: 1.15em; }
.hc-verdict span { display: block; font-size: 0.85em; margin-top: 3px; }
.hc-healthy { background: #2e7d32; } .hc-faults { background: #c62828; } .hc-unjudged { background: #757575; }
.hc-repaired { background: #1565c0; } .hc-incomplete { background: #ef6c00; }
tr.ok td:last-child { background: #e8f5e9; } tr.warn td:last-child { background: #fff3e0; }
tr.bad td:last-child { background: #ffebee; font-weight: bold; } tr.unknown td:last-child { background: #eeeeee; }
tr.done td:first-child, tr.already-gone td:first-child { background: #e8f5e9; }
tr.skipped td:first-child, tr.manual td:first-child { background: #fff3e0; }
tr.failed td:first-child, tr.refused td:first-child { background: #ffebee; }
pre.hc-wrap { white-space: pre-wrap; overflow-wrap: anywhere; }
table.hc-fix td:first-child, table.hc-fix td:nth-child(2) { white-space: nowrap; }
#environment-header:has(+ #environment:empty), #environment:empty { display: none; }
.hc-scroll { max-height: 640px; overflow: auto; border: 1px solid #ddd; }
</style>"""


def environment_rows(run: Run) -> list[tuple[str, str]]:
    """Where and with what the run looked: enough to tell whether a report is about the right machine."""
    snap = run.snapshot
    rows = [("host", socket.gethostname())]
    for part in run.observation.parts:  # each manager's store in a run over several
        records = part.snapshot.registries
        glob = records.authority
        mtime = datetime.fromtimestamp(glob.mtime).isoformat(timespec="seconds") if glob.mtime else "unreadable"
        rows += [
            ("workspace", str(records.workspace)),
            ("records", f"{records.source}: {glob.path} (modified {mtime})"),
            ("task registries", str(len(records.members))),
        ]
    rows += [
        (f"tmux server {s.label}", f"{s.state}{': ' + s.reason if s.reason else ''} ({s.socket_path})")
        for s in snap.servers
    ]
    rows += [
        ("tmux", snap.tmux_version or "not found"),
        (
            "snapshot",
            f"{snap.duration:.3f}s, attempt {snap.attempts}"
            + ("" if snap.stable else " (the registry kept changing while it was read)"),
        ),
        (
            "settings",
            f"prefix {snap.settings.session_prefix or snap.registries.dialect.session_prefix!r}, "
            f"grace {snap.settings.grace:g}s, "
            f"claude match {snap.settings.claude_match!r}, claude exe {snap.settings.claude_exe!r}",
        ),
    ]
    for name in PACKAGES:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


class HtmlHooks:
    """pytest-html hooks, registered only when pytest-html is active."""

    def __init__(self, config: pytest.Config) -> None:
        self.environment: list[tuple[str, str]] = []
        self.history: list[history.Record] = []
        if not config.option.htmlpath:  # a timestamped report in --report-dir, self-contained (opens offline)
            name = REPORT_NAME.format(stamp=time.strftime("%Y%m%d-%H%M%S"), pid=os.getpid())
            config.option.htmlpath = str(report_dir(config) / name)
            config.option.self_contained_html = True

    def pytest_html_report_title(self, report: Any) -> None:  # pytest-html's report (it ships no types)
        report.title = f"Agent health on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}"

    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str],
                                    session: pytest.Session) -> None:
        run = get_run(session.config)
        if run is None:
            return
        state, headline, counts = verdict(run)
        found = " as found" if run.fix_report is not None and run.fix_report.applied else ""
        rows = run.figures.rows()
        figures = "".join(
            f'<tr class="{level}"><td>{escape(label)}</td><td>{escape(value)}</td></tr>'
            for (label, value), level in zip(rows, run.figures.states(), strict=True)
        )
        parts = [
            STYLE,
            f'<div class="hc-report"><div class="hc-verdict hc-{state}">{escape(headline)}<span>{escape(counts)}</span>'
            f"</div><h2>Agent health{found}</h2>",
            f'<table class="hc-summary"><tr><th>figure</th><th>value</th></tr>{figures}</table>',
        ]
        if run.info:
            parts.append("<h2>Information (never a failure)</h2>"
                         + html_table(finding_rows(run.info), FINDINGS_HEADER, "hc-info"))
        if waived := [f for r in run.results.values() for f in r.waived]:
            waived_rows = [(f.check, f.label, f.reason, f.waiver) for f in waived]
            parts.append("<h2>Waived (never a failure, never acted on)</h2>"
                         + html_table(waived_rows, ("check", "entity", "reason", "waiver"), "hc-info"))
        parts += [f"<h2>{escape(title)}</h2>{html}" for title, _, html in fix_sections(run.fix_report, with_plan=True)]
        parts.append(f"<h2>The fleet{found}</h2><div class='hc-scroll'>{picture.svg(run)}</div>")
        if self.history:
            trend = history.trend_svg(self.history, history.workspace_key(run))
            parts.append(f"<h2>Trend</h2><div class='hc-trend'>{trend}</div>")
        prefix.append("".join(parts) + "</div>")
        env = html_table(self.environment, ("", ""), "hc-env")
        postfix.append(f'<div class="hc-report"><details><summary>Environment</summary>{env}</details></div>')

    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        """A skip's reason as text, not as pytest's (path, line, message) tuple."""
        if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            data[:] = [escape(str(report.longrepr[2]).removeprefix("Skipped: "))]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """A failing check's findings as an entity/reason table in its row."""
        from pytest_html import extras

        result = yield
        found = item.stash.get(FOUND, None)
        if found and result.when == "call" and result.failed:
            table = html_table(finding_rows(found), FINDINGS_HEADER, "hc-findings")
            # pytest-html's own attribute of a report, which pytest's types do not know
            result.extras = [*getattr(result, "extras", []), extras.html(table)]  # type: ignore[attr-defined]
        return result


def record(config: pytest.Config, run: Run) -> None:
    """Add this run to the history beside the reports (before the report is drawn, so its trend includes it)."""
    hooks = config.pluginmanager.get_plugin("healthchecks-html")
    html = getattr(config.option, "htmlpath", None)
    if hooks is not None and html:
        try:
            hooks.history = history.append(report_dir(config), history.entry(run, Path(html).name))
        except history.HistoryRefused as exc:
            _warn(str(exc))


def _warn(line: str) -> None:
    """A file the reports go beside was refused: said on stderr, which every output mode leaves to people."""
    sys.stderr.write(f"agent-healthchecks: {for_people(line)}\n")


def finish(config: pytest.Config) -> None:
    """Keep this run's report as latest.html, only the newest --keep-reports of them, and the index of them."""
    html = getattr(config.option, "htmlpath", None)
    if html and Path(html).is_file():
        directory = report_dir(config)
        _copy_latest(Path(html), directory / "latest.html")
        prune_reports(directory, value(config, "--keep-reports"))
        hooks = config.pluginmanager.get_plugin("healthchecks-html")
        if hooks is not None:
            history.write_index(directory, hooks.history)


def _copy_latest(report: Path, latest: Path) -> None:
    """latest.html as a copy of the report, written anew and renamed into place; a symlink there is refused, never
    followed (its target may be anyone's file)."""
    if latest.is_symlink() or (latest.exists() and not latest.is_file()):
        _warn(f"{latest}: is a symlink or not a regular file; refusing to write through it (latest.html not updated)")
        return
    fd, tmp = tempfile.mkstemp(dir=latest.parent, prefix=".latest.html.")
    try:
        with os.fdopen(fd, "wb") as out, open(report, "rb") as src:
            shutil.copyfileobj(src, out)
        os.chmod(tmp, 0o644)
        os.replace(tmp, latest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_environment(config: pytest.Config, run: Run) -> None:
    """Where and with what the run looked, with pytest-metadata's rows (Python, platform, every package), in one
    collapsed section below the results: the report opens with the verdict, not with 20 rows of versions."""
    hooks = config.pluginmanager.get_plugin("healthchecks-html")
    if hooks is None:
        return
    hooks.environment = environment_rows(run)
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:
        return
    metadata = config.stash[metadata_key]
    hooks.environment += [(k, str(v)) for k, v in metadata.items()]
    metadata.clear()


def prune_reports(directory: Path, keep: int) -> None:
    """Keep the newest ``keep`` timestamped reports (0: all): a run every few minutes must not fill the disk.

    Only files named as this tool names its reports are ever deleted.
    """
    if keep <= 0:
        return
    reports = sorted(
        (p for p in directory.iterdir() if REPORT_PATTERN.fullmatch(p.name) and p.is_file()),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    for old in reports[:-keep]:
        old.unlink(missing_ok=True)
