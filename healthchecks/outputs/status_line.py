"""`--status-line`: the whole output for a monitoring system, after the monitoring-plugins guidelines.

The first line is `AGENT-HEALTH <STATE> - <text> | <perfdata>`; one line per failing finding and per check
that could not be judged follows (long output), then one per waived finding (monitoring sees what is waived).
Text from the records is escaped there: a `|` or a line break in an agent id must not forge perfdata or lines.
Performance data: `check=value;warn;crit;0` per check, `U` for a check that could not be judged. The exit status
is the state: 0 OK, 1 WARNING (at most --status-warning failing findings in every failing check), 2 CRITICAL,
3 UNKNOWN (nothing failing, but a check could not be judged).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..options import Option, not_negative_int
from ..text import for_status_line
from .output import Output

if TYPE_CHECKING:  # types only: pytest loads the options table in every run
    from ..results import Results
    from ..run import Run

LONG_LINES = 50  # of long output at most: a monitoring system keeps a few kilobytes


def status_line(results: Results, warning: int = 0) -> tuple[str, int]:
    """The plugin output (first line, then long output) and its exit status."""
    counts = {cid: len(r.failing) for cid, r in results.items() if r.judged}
    failing = {cid: n for cid, n in counts.items() if n}
    unjudged = [cid for cid, r in results.items() if not r.judged]
    perf = " ".join(
        f"{cid}={counts[cid]};0;{warning};0" if cid in counts else f"{cid}=U" for cid in results
    )
    what = ", ".join(f"{n} {cid}" for cid, n in failing.items())
    not_judged = f"not judged: {', '.join(unjudged)}" if unjudged else ""
    if any(n > warning for n in failing.values()):
        state, code, text = "CRITICAL", 2, "; ".join(filter(None, (what, not_judged)))
    elif unjudged:
        state, code, text = "UNKNOWN", 3, "; ".join(filter(None, (what, not_judged)))
    elif failing:
        state, code, text = "WARNING", 1, what
    else:
        state, code, text = "OK", 0, f"all {len(results)} checks pass"
    details = [f"{f.check}: {f.line()}" for r in results.values() for f in r.failing]
    details += [f"{cid}: not judged ({results[cid].reason})" for cid in unjudged]
    details += [f"{f.check}: waived: {f.line()}" for r in results.values() for f in r.waived]  # seen, not failing
    details = [for_status_line(line) for line in details]  # one line each, and no `|` to start perfdata
    if len(details) > LONG_LINES:
        details = [*details[:LONG_LINES], f"... and {len(details) - LONG_LINES} more"]
    return "\n".join([f"AGENT-HEALTH {state} - {text} | {perf}", *details]), code


def write(run: Run, value: bool, base: Path, healthchecks_status_warning: int = 0) -> int | None:
    if not value:
        return None
    output, code = status_line(run.final[0], healthchecks_status_warning)
    print(output, flush=True)
    return code


OUTPUT = Output(
    Option(
        "--status-line",
        "print only a monitoring-plugins status line (OK/WARNING/CRITICAL/UNKNOWN, counts, performance data, then "
        "one line per finding) and exit 0/1/2/3, for Nagios, Icinga and the like",
        kind="flag",
    ),
    write,
    owns_stdout=True,
    extra=(
        Option(
            "--status-warning",
            "with --status-line: a check with at most N failing findings is WARNING, more is CRITICAL "
            "(default 0: any is CRITICAL)",
            default="0",
            parse=not_negative_int,
        ),
    ),
)
