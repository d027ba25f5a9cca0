"""The terminal summary: where the run looked, the seed's figures, the information findings, the fix."""

from __future__ import annotations

from .render import fix_sections, text_table


def terminal_summary(reporter, run) -> None:
    write = reporter.write_line
    reporter.write_sep("=", "agent health")
    settings = run.snapshot.settings
    servers = ", ".join(f"{s.label} ({s.state})" for s in run.snapshot.servers)
    records = f"{run.snapshot.registries.source} ({run.snapshot.registries.global_file.path.name})"
    write(f"workspace: {settings.workspace}   records: {records}   tmux: {servers}   "
          f"snapshot: {run.snapshot.duration:.2f}s")
    for line in text_table(run.figures.rows()):
        write("  " + line)
    info = run.info
    if info:
        write(f"information ({len(info)}, never a failure):")
        for f in info:
            write(f"  {f.line()}")
    for title, lines, _ in fix_sections(run.fix_report, with_plan=False):
        reporter.write_sep("-", title)
        for line in lines:
            write(line)
