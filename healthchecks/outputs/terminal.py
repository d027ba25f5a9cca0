"""The terminal summary: where the run looked, the seed's figures, the information findings, the fix."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

import pytest

from ..results import Finding
from ..text import for_people
from .render import fix_sections, text_table

if TYPE_CHECKING:
    from ..run import Run

INFO_SHOWN = 10  # information lines shown per check; a busy machine may have hundreds of foreign Claude


def _by_check(findings: list[Finding]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for f in findings:
        grouped[f.check].append(f.line())
    return grouped


def manager_lines(run: Run) -> list[str]:
    """A run over several managers: one line each (where, what failed), and the accounted-for line."""
    from ..checks import ACCOUNTED_FOR, NOBODY, agent_processes  # a health-check run's only

    results, _ = run.final
    counts = Counter((f.manager, f.severity) for r in results.values() for f in r.findings)
    out = [f"manager {p.manager}: {p.snapshot.registries.workspace} ({p.snapshot.registries.source})   "
           f"{counts[p.manager, 'fail']} failing, {counts[p.manager, 'info']} information   "
           f"snapshot: {p.snapshot.duration:.2f}s" for p in run.current.parts]
    accounted = results[ACCOUNTED_FOR]
    total = len(agent_processes(run.current.analysis))
    out.append(f"agent processes: {total}; {len(accounted.failing)} claimed by two managers (never acted on), "
               f"{sum(f.manager == NOBODY for f in accounted.info)} nobody's, the rest one manager's or a person's")
    return out


def terminal_summary(reporter: pytest.TerminalReporter, run: Run) -> None:
    def write(line: str) -> None:  # every line may hold a registry's or a process's text
        reporter.write_line(for_people(line))

    reporter.write_sep("=", "agent health")
    if len(run.current.parts) > 1:
        for line in manager_lines(run):
            write(line)
    else:
        servers = ", ".join(f"{s.label} ({s.state})" for s in run.snapshot.servers)
        records = f"{run.snapshot.registries.source} ({run.snapshot.registries.authority.path.name})"
        write(f"workspace: {run.snapshot.registries.workspace}   records: {records}   tmux: {servers}   "
              f"snapshot: {run.snapshot.duration:.2f}s")
    for line in text_table(run.figures.rows()):
        write("  " + line)
    info = run.info
    if info:
        write(f"information ({len(info)}, never a failure):")
        for check, lines in _by_check(info).items():
            for line in lines[:INFO_SHOWN]:
                write(f"  {line}")
            if len(lines) > INFO_SHOWN:
                more = len(lines) - INFO_SHOWN
                write(f"  ... and {more} more of {check} (all in the HTML report and --findings-json)")
    waived = [f for r in run.results.values() for f in r.waived]
    if waived:
        write(f"waived ({len(waived)}, never a failure, never acted on):")
        for f in waived:
            write(f"  {f.check}: {f.line()}")
    for title, lines, _ in fix_sections(run.fix_report, with_plan=False):
        reporter.write_sep("-", title)
        for line in lines:
            write(line)
