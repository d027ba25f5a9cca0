"""The HTML report (pytest-html): the run's sections, its environment, where it goes, how many are kept."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from datetime import datetime
from html import escape
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from ..options import report_dir, value
from ..run import get_run
from .render import FINDINGS_HEADER, finding_rows, fix_sections, html_table

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
table.hc-summary, table.hc-info, table.hc-findings, table.hc-before-after {
  border-collapse: collapse; margin: 4px 0 12px; }
table.hc-summary td, table.hc-summary th, table.hc-info td, table.hc-info th, table.hc-findings td,
table.hc-findings th, table.hc-before-after td, table.hc-before-after th { border: 1px solid #ccc; padding: 3px 8px;
  text-align: left; color: #222; }
table.hc-summary td:first-child, table.hc-before-after td:first-child { font-weight: bold; }
</style>"""


def environment_rows(run) -> list[tuple[str, str]]:
    """Where and with what the run looked: enough to tell whether a report is about the right machine."""
    snap = run.snapshot
    glob = snap.registries.global_file
    mtime = datetime.fromtimestamp(glob.mtime).isoformat(timespec="seconds") if glob.mtime else "unreadable"
    rows = [
        ("host", socket.gethostname()),
        ("workspace", str(snap.settings.workspace)),
        ("records", f"{snap.registries.source}: {glob.path} (modified {mtime})"),
        ("task registries", str(len(snap.registries.task_files))),
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
            f"prefix {snap.settings.session_prefix!r}, grace {snap.settings.grace:g}s, "
            f"claude match {snap.settings.claude_match!r}",
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
        if not config.option.htmlpath:  # a timestamped report in --report-dir, self-contained (opens offline)
            name = REPORT_NAME.format(stamp=time.strftime("%Y%m%d-%H%M%S"), pid=os.getpid())
            config.option.htmlpath = str(report_dir(config) / name)
            config.option.self_contained_html = True

    def pytest_html_report_title(self, report) -> None:
        report.title = f"Agent health on {socket.gethostname()} at {time.strftime('%Y-%m-%d %H:%M:%S')}"

    def pytest_html_results_summary(self, prefix: list, summary: list, postfix: list, session) -> None:
        run = get_run(session.config)
        if run is None:
            return
        prefix.append(
            STYLE + "<h2>Agent health</h2>" + html_table(run.figures.rows(), ("figure", "value"), "hc-summary")
        )
        info = run.info
        if info:
            prefix.append(
                "<h2>Information (never a failure)</h2>" + html_table(finding_rows(info), FINDINGS_HEADER, "hc-info")
            )
        for title, _, html in fix_sections(run.fix_report, with_plan=True):
            prefix.append(f"<h2>{escape(title)}</h2>{html}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        """A failing check's findings as an entity/reason table in its row."""
        from pytest_html import extras

        from ..plugin import FOUND

        result = yield
        found = item.stash.get(FOUND, None)
        if found and result.when == "call" and result.failed:
            table = html_table(finding_rows(found), FINDINGS_HEADER, "hc-findings")
            result.extras = [*getattr(result, "extras", []), extras.html(table)]
        return result


def finish(config: pytest.Config) -> None:
    """Keep this run's report as latest.html, and only the newest --keep-reports of them."""
    html = getattr(config.option, "htmlpath", None)
    if html and Path(html).is_file():
        directory = report_dir(config)
        shutil.copyfile(html, directory / "latest.html")
        prune_reports(directory, value(config, "--keep-reports"))


def add_environment(config, run) -> None:
    """Add where and with what the run looked to pytest-metadata's table, which pytest-html shows."""
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:
        return
    config.stash[metadata_key].update(dict(environment_rows(run)))


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
