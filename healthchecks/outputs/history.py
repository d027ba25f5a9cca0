"""Each run's figures, kept beside the reports: one JSON line a run in `<report-dir>/history.jsonl`, at most
KEEP of them. Two runs writing at once take turns on the file's flock, and the file is rewritten in place under
it, so no line is lost or torn. The report draws the trend of the last runs with pygal (SVG, no script, offline),
and `<report-dir>/index.html` lists the past reports with their verdicts."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import COUNTERS, GHOST_AGENTS, LEAKED_SESSIONS, ORPHAN_PROCESSES, ZOMBIE_SESSIONS
from ..text import for_html as escape
from .render import verdict

if TYPE_CHECKING:
    from ..run import Run

# One run as a line of the history file (JSON: validated by _parse when read back).
Record = dict[str, Any]

FILE = "history.jsonl"
KEEP = 1000  # runs
TREND = 50  # runs drawn
SERIES = {
    "ghosts": GHOST_AGENTS,
    "orphans": ORPHAN_PROCESSES,
    "zombies": ZOMBIE_SESSIONS,
    "leaked sessions": LEAKED_SESSIONS,
    "counter mismatches": COUNTERS,
}


def entry(run: Run, report: str) -> Record:
    results, _ = run.final
    state, headline, _ = verdict(run)
    counts = {name: (len(results[c].failing) if c in results and results[c].judged else None)
              for name, c in SERIES.items()}
    return {"time": time.time(), "workspace": workspace_key(run), "status": state,
            "headline": headline, "report": report, "counts": counts}


def workspace_key(run: Run) -> str:
    """Whose trend a run belongs to: its workspace (the machine's over several managers), or the demo's (built anew
    in a temporary folder each time)."""
    return "demo" if run.world is not None else run.workspace


class HistoryRefused(OSError):
    """The history file is not a regular file of its own (a symlink, a FIFO): it is left alone."""


def append(directory: Path, record: Record) -> list[Record]:
    """Add one run, keep the newest KEEP; returns what the file now holds.

    A symlink is not followed (its target may be anyone's file) and anything but a regular file is not read (a
    FIFO would block the run): HistoryRefused, and the report is drawn without a trend.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        raise HistoryRefused(f"{path}: not used ({exc.strerror}; a symlink is not followed)") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HistoryRefused(f"{path}: not a regular file; not used")
        fcntl.flock(fd, fcntl.LOCK_EX)
        with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as fh:
            records = [r for r in (_parse(line) for line in fh.read().splitlines()) if r is not None]
            records = [*records, record][-KEEP:]
            fh.seek(0)
            fh.write("".join(json.dumps(r) + "\n" for r in records))
            fh.truncate()
            fh.flush()
            os.fsync(fh.fileno())
        return records
    finally:
        os.close(fd)  # releases the lock


FIELDS: dict[str, type | tuple[type, ...]] = {
    "time": (int, float), "workspace": str, "status": str, "headline": str, "report": str, "counts": dict,
}


def _parse(line: str) -> Record | None:
    """A whole record, or None: a line another tool tore or wrote is skipped, not fatal."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), t) for k, t in FIELDS.items()):
        return None
    if isinstance(record["time"], bool) or not 0 <= record["time"] < 1e11:  # a time localtime() can render
        return None
    if "/" in record["report"] or "\0" in record["report"]:  # a report's file name in this folder, nothing else
        return None
    if not all(v is None or type(v) is int for v in record["counts"].values()):
        return None
    return record


def trend_svg(records: list[Record], workspace: str) -> str:
    """The fault counts of this workspace's last runs, drawn by pygal as inline SVG."""
    import pygal  # imported on use: only a run that writes an HTML report draws

    mine = [r for r in records if r.get("workspace") == workspace][-TREND:]
    chart = pygal.Line(
        js=[],  # no script from the network: the report opens offline
        height=300,
        width=900,
        show_dots=True,
        x_label_rotation=30,
        title="faults over the last runs",
        disable_xml_declaration=True,
    )
    chart.x_labels = [time.strftime("%m-%d %H:%M", time.localtime(r["time"])) for r in mine]
    for name in SERIES:
        chart.add(name, [r.get("counts", {}).get(name) for r in mine])
    drawn: str = chart.render(is_unicode=True)  # (pygal ships no types)
    return drawn


def write_index(directory: Path, records: list[Record]) -> None:
    """`index.html`: the reports still on disk, newest first, with their verdicts."""
    rows = "".join(
        f'<tr class="{escape(r["status"])}"><td>{time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["time"]))}</td>'
        f'<td><a href="{escape(r["report"])}">{escape(r["report"])}</a></td><td>{escape(r["headline"])}</td>'
        f"<td>{escape(r['workspace'])}</td></tr>"
        for r in reversed(records)
        if r.get("report") and (directory / r["report"]).is_file()
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>agent-healthchecks reports</title><style>"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left} tr.healthy td:nth-child(3){background:#e8f5e9}"
        "tr.faults td:nth-child(3),tr.incomplete td:nth-child(3){background:#ffebee}"
        "tr.repaired td:nth-child(3){background:#e3f2fd} tr.unjudged td:nth-child(3){background:#eeeeee}"
        "</style></head><body><h1>agent-healthchecks reports</h1><table><tr><th>time</th><th>report</th>"
        f"<th>verdict</th><th>workspace</th></tr>{rows}</table></body></html>"
    )
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".index.html.")  # a new file: nothing planted is followed
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.chmod(tmp, 0o644)
    os.replace(tmp, directory / "index.html")
