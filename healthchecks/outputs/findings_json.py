"""`--findings-json FILE`: every finding with its check, severity, entity and reason, the figures, and the fix."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..options import Option
from .files import resolve, write_atomic_text
from .output import Output
from .render import verdict

if TYPE_CHECKING:  # types only: pytest loads the options table in every run (and this package never imports fixers)
    from fixers.run import FixReport

    from ..results import Results
    from ..run import Run
    from ..summary import Figures

VERSION = 2  # 2: version, status, finding_id, entity as kind + id (the text is `label`); then `program`


def document(results: Results, figures: Figures, taken_at: float, settings: dict[str, Any], status: str
             ) -> dict[str, Any]:
    """The document healthchecks/schemas/findings.schema.json describes."""
    from ..checks import CHECKS  # a health-check run's: the table of outputs is loaded by every pytest run

    when = datetime.fromtimestamp(taken_at, timezone.utc).isoformat()
    findings = [
        {
            "finding_id": f.finding_id,
            "check": f.check,
            "severity": f.severity,
            "entity": dict(zip(("kind", "id"), f.kind_id, strict=True)),
            "label": f.label,
            "program": f.program or None,
            "reason": f.reason,
            "waiver": f.waiver,
            "manager": f.manager,
            "snapshot_time": when,
        }
        for result in results.values()
        for f in result.findings
    ]
    checks = {cid: {"status": r.status, "reason": r.reason, "title": CHECKS[cid].title} for cid, r in results.items()}
    return {"version": VERSION, "status": status, "snapshot_time": when, "settings": settings,
            "summary": asdict(figures), "checks": checks, "findings": findings}


def fix_document(report: FixReport) -> dict[str, Any]:
    return {
        "message": report.message,
        "applied": report.applied,
        "interrupted": report.interrupted,
        "before": asdict(report.before) if report.before is not None else None,
        "outcomes": [
            {"action": o.action.describe(), "kind": o.action.kind, "status": o.status, "detail": o.detail}
            for o in report.outcomes
        ],
    }


def write(run: Run, value: str, base: Path) -> None:
    if not value:
        return None
    results, figures = run.final
    settings = run.snapshot.settings
    doc = document(
        results,
        figures,
        run.current.snapshot.taken_at,  # the snapshot the results were judged on: after the fix when one ran
        {
            "source": run.snapshot.registries.source,
            "workspace": str(run.snapshot.registries.workspace),
            "tmux_sockets": list(settings.tmux_sockets),
            "session_prefix": settings.session_prefix or run.snapshot.registries.dialect.session_prefix,
            "grace": settings.grace,
            "managers": [{"manager": p.manager, "source": p.snapshot.registries.source,
                          "workspace": str(p.snapshot.registries.workspace)} for p in run.observation.parts],
        },
        verdict(run)[0],
    )
    if run.fix_report is not None:
        doc["fix"] = fix_document(run.fix_report)
    write_atomic_text(resolve(value, base), json.dumps(doc, indent=2) + "\n")
    return None


OUTPUT = Output(
    Option(
        "--findings-json",
        "write every finding (check, severity, entity, reason, snapshot time) and the summary figures as JSON",
    ),
    write,
)
