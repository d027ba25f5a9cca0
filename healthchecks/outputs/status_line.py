"""`--status-line`: the whole output is one Nagios-style line; the exit status 0 OK, 2 CRITICAL, 3 UNKNOWN."""

from __future__ import annotations

from pathlib import Path

from ..options import Option
from ..results import Results
from ..run import Run
from . import Output
from .prometheus import failing_counts


def status_line(results: Results) -> tuple[str, int]:
    """A Nagios-style one-liner and its exit code: 0 OK, 2 CRITICAL, 3 UNKNOWN."""
    counts = {cid: n for cid, n in failing_counts(results).items() if n}
    unjudged = [cid for cid, r in results.items() if not r.judged]
    perf = " ".join(f"{cid}={n}" for cid, n in failing_counts(results).items())
    if counts:
        what = ", ".join(f"{n} {cid}" for cid, n in counts.items())
        extra = f"; not judged: {', '.join(unjudged)}" if unjudged else ""
        return f"AGENT-HEALTH CRITICAL - {what}{extra} | {perf}", 2
    if unjudged:
        return f"AGENT-HEALTH UNKNOWN - not judged: {', '.join(unjudged)} | {perf}", 3
    return f"AGENT-HEALTH OK - all {len(results)} checks pass | {perf}", 0


def write(run: Run, value: bool, base: Path) -> int | None:
    if not value:
        return None
    line, code = status_line(run.final[0])
    print(line, flush=True)
    return code


OUTPUT = Output(
    Option(
        "--status-line",
        "print only a Nagios-style status line (OK/CRITICAL/UNKNOWN with counts) and exit 0/2/3, for monitoring "
        "systems",
        kind="flag",
    ),
    write,
    owns_stdout=True,
)
