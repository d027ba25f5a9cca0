"""Render figures, findings and the fix for people: plain text for the terminal, HTML for the report."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..text import for_html as escape

if TYPE_CHECKING:  # for the type checker only: this package never imports fixers
    from fixers.plan import Plan
    from fixers.run import FixReport

    from ..results import Finding
    from ..run import Run


def text_table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None) -> list[str]:
    """Left-aligned columns; the last column is never padded."""
    all_rows = ([header] if header else []) + list(rows)
    if not all_rows:
        return []
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in all_rows]
    if header:
        lines.insert(1, "  ".join("-" * w for w in [*widths, len(header[-1])]))
    return lines


def html_table(rows: Iterable[tuple[str, ...]], header: tuple[str, ...] | None = None, cls: str = "hc") -> str:
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}">{head}{body}</table>'


def finding_rows(findings: Iterable[Finding]) -> list[tuple[str, str]]:
    return [(f.label, f.reason) for f in findings]


FINDINGS_HEADER = ("entity", "reason")


def _pre(lines: list[str]) -> str:
    return '<pre class="hc-wrap">' + "\n".join(escape(line) for line in lines) + "</pre>"


def _rows_html(rows: Sequence[tuple[str, ...]], header: tuple[str, ...], classes: list[str], cls: str) -> str:
    """A table whose rows carry a class each (an outcome's colour)."""
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
    body = "".join(
        f'<tr class="{c}">' + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row, c in zip(rows, classes, strict=True)
    )
    return f'<table class="{cls}">{head}{body}</table>'


def _plan_html(plan: Plan) -> str:
    rows = [(a.kind.replace("_", " "), a.entity, a.detail or "", a.reason) for a in plan.actions]
    rows += [("not fixed automatically", f.entity, f.check, f.reason) for f in plan.manual]
    rows += [("held back", "", "", h.line()) for h in plan.held]
    rows += [("not planned", "", "", b.line()) for b in plan.blocked]
    classes = ["planned"] * len(plan.actions) + ["manual"] * (len(rows) - len(plan.actions))
    if not rows:
        return "<p>no actions</p>"
    return _rows_html(rows, ("action", "target", "detail", "reason"), classes, "hc-fix")


def _outcomes_html(report: FixReport) -> str:
    rows = [(o.status, o.action.kind.replace("_", " "), o.action.entity, o.detail) for o in report.outcomes]
    classes = [o.status.replace(" ", "-") for o in report.outcomes]
    table = _rows_html(rows, ("outcome", "action", "target", "detail"), classes, "hc-fix") if rows else ""
    return f"<p>{escape(report.message)}</p>{table}"


def fix_sections(report: FixReport | None, with_plan: bool) -> list[tuple[str, list[str], str]]:
    """(title, text lines, html) for the remediation parts of the terminal summary and the report."""
    if report is None:
        return []
    sections = []
    if with_plan:
        sections.append(("Remediation plan", report.plan.lines(), _plan_html(report.plan)))
    results = [report.message] + [o.line() for o in report.outcomes]
    sections.append(("remediation results", results, _outcomes_html(report)))
    if report.after is not None and report.before is not None:  # (set together)
        rows = [
            (label, before, after)
            for (label, before), (_, after) in zip(report.before.rows(), report.after.rows(), strict=True)
        ]
        header = ("figure", "before", "after")
        sections.append(("before / after", text_table(rows, header), html_table(rows, header, "hc-before-after")))
        still = [r.line() for r in report.remaining] or ["nothing: every check passes"]
        sections.append(("still wrong after the fix", still, _pre(still)))
    return sections


def verdict(run: Run) -> tuple[str, str, str]:
    """(state, headline, counts) of the run's final state: what the banner says first."""
    results, _ = run.final
    failing = [r for r in results.values() if r.status == "fail"]
    unjudged = [c for c, r in results.items() if not r.judged]
    faults = sum(len(r.failing) for r in failing)
    counts = (
        f"{faults} fault(s) in {len(failing)} of {len(results)} checks; {len(unjudged)} not judged; "
        f"{sum(len(r.info) for r in results.values())} information"
    )
    fixed = run.fix_report
    if fixed is not None and fixed.applied:
        done = fixed.done
        if fixed.ok:
            return "repaired", f"Repaired: {done} action(s) done, every check passes now", counts
        return "incomplete", f"Repair incomplete: {done} action(s) done, faults remain", counts
    if failing:
        return "faults", f"Faults found in {len(failing)} check(s)", counts
    if unjudged:
        return "unjudged", f"Could not judge: {', '.join(unjudged)}", counts
    return "healthy", f"Healthy: all {len(results)} checks pass", counts
