"""Machine-readable outputs of one run: findings JSON, Prometheus metrics, a monitoring status line.

Formats are a separate axis from checks: each takes the judged run and renders it, nothing more.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from .checks import CHECKS, Finding
from .summary import Figures

Results = dict[str, "list[Finding] | tuple[str, str]"]
PREFIX = "agent_healthchecks"


def check_status(result: list[Finding] | tuple[str, str]) -> str:
    if isinstance(result, tuple):
        return result[0]  # "skip" or "error"
    return "fail" if any(f.severity == "fail" for f in result) else "pass"


def failing_counts(results: Results) -> dict[str, int]:
    return {cid: sum(f.severity == "fail" for f in r) if isinstance(r, list) else 0 for cid, r in results.items()}


def findings_document(results: Results, figures: Figures, taken_at: float, settings: dict) -> dict:
    """Every finding with its check, severity, entity and reason, plus the summary figures."""
    when = datetime.fromtimestamp(taken_at, timezone.utc).isoformat()
    findings = [
        {"check": f.check, "severity": f.severity, "entity": f.entity, "reason": f.reason, "snapshot_time": when}
        for result in results.values()
        if isinstance(result, list)
        for f in result
    ]
    checks = {
        cid: {"status": check_status(r), "reason": r[1] if isinstance(r, tuple) else "", "title": CHECKS[cid].title}
        for cid, r in results.items()
    }
    return {
        "snapshot_time": when,
        "settings": settings,
        "summary": asdict(figures),
        "checks": checks,
        "findings": findings,
    }


def metrics_text(results: Results, figures: Figures, snapshot_seconds: float, taken_at: float) -> str:
    """Prometheus text exposition format (version 0.0.4) of the run's gauges."""
    lines: list[str] = []

    def gauge(name: str, help_: str, samples: list[tuple[dict[str, str], float | None]]) -> None:
        lines.append(f"# HELP {PREFIX}_{name} {help_}")
        lines.append(f"# TYPE {PREFIX}_{name} gauge")
        for labels, value in samples:
            if value is None:
                continue  # not known (registry unusable, tmux unreachable): absent, not zero
            label = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}" if labels else ""
            lines.append(f"{PREFIX}_{name}{label} {_number(value)}")

    counts = failing_counts(results)
    gauge("registry_agents", "Agent entries in the global registry.", [({}, figures.registry_agents)])
    gauge(
        "active_agents",
        "Active agents: the registry's counter and the entries.",
        [({"source": "counter"}, figures.active_counter), ({"source": "entries"}, figures.active_entries)],
    )
    gauge(
        "claude_processes",
        "Claude processes by class.",
        [
            ({"class": "attached"}, figures.claude_attached),
            ({"class": "orphan"}, figures.claude_orphan),
            ({"class": "foreign"}, figures.claude_foreign),
        ],
    )
    gauge(
        "agent_sessions",
        "Live agent tmux sessions.",
        [
            ({"tracked": "true"}, figures.tracked_sessions),
            ({"tracked": "false"}, figures.untracked_sessions),
        ],
    )
    for name, check_id, help_ in (
        ("ghost_agents", "ghost_agents", "Active entries whose session is gone."),
        ("orphan_processes", "orphan_processes", "Orphan Claude processes."),
        ("zombie_sessions", "zombie_sessions", "Agent sessions without Claude."),
        ("leaked_sessions", "leaked_sessions", "Finished agents whose session runs."),
        ("counter_drift", "counters", "Registry counters that differ from entries."),
    ):
        judged = not isinstance(results[check_id], tuple)
        gauge(name, help_, [({}, counts[check_id] if judged else None)])
    gauge(
        "check_passed",
        "1 when the check passed, 0 when it failed or could not be judged.",
        [({"check": cid}, 1.0 if check_status(r) == "pass" else 0.0) for cid, r in results.items()],
    )
    gauge(
        "check_judged",
        "1 when the check could be judged (registry usable, tmux reachable).",
        [({"check": cid}, 0.0 if isinstance(r, tuple) else 1.0) for cid, r in results.items()],
    )
    gauge(
        "snapshot_duration_seconds",
        "Seconds taken to read registries, tmux and processes.",
        [({}, round(snapshot_seconds, 6))],
    )
    gauge("last_run_timestamp_seconds", "When the snapshot was taken (Unix time).", [({}, round(taken_at, 3))])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Integers exactly, other floats at full precision (a timestamp must not become 1.79e+09)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def status_line(results: Results) -> tuple[str, int]:
    """A Nagios-style one-liner and its exit code: 0 OK, 2 CRITICAL, 3 UNKNOWN."""
    counts = {cid: n for cid, n in failing_counts(results).items() if n}
    unjudged = [cid for cid, r in results.items() if isinstance(r, tuple)]
    perf = " ".join(f"{cid}={n}" for cid, n in failing_counts(results).items())
    if counts:
        what = ", ".join(f"{n} {cid}" for cid, n in counts.items())
        extra = f"; not judged: {', '.join(unjudged)}" if unjudged else ""
        return f"AGENT-HEALTH CRITICAL - {what}{extra} | {perf}", 2
    if unjudged:
        return f"AGENT-HEALTH UNKNOWN - not judged: {', '.join(unjudged)} | {perf}", 3
    return f"AGENT-HEALTH OK - all {len(results)} checks pass | {perf}", 0


def write_atomic_text(path: Path, text: str) -> None:
    """Write so that a reader (a node-exporter textfile collector) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, document: dict) -> None:
    write_atomic_text(path, json.dumps(document, indent=2) + "\n")
