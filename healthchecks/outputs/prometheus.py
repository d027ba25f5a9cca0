"""`--metrics-file FILE`: Prometheus text-format gauges, written whole (for node-exporter's textfile collector)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import Option
from .files import resolve, write_atomic_text
from .output import Output

if TYPE_CHECKING:  # types only: pytest loads the options table in every run
    from ..results import Results
    from ..run import Run
    from ..summary import Figures

PREFIX = "agent_healthchecks"


def failing_counts(results: Results) -> dict[str, int]:
    return {cid: len(r.failing) for cid, r in results.items()}


def metrics_text(
    results: Results,
    figures: Figures,
    snapshot_seconds: float,
    taken_at: float,
    base: dict[str, str] | None = None,
    sources: tuple[str, ...] = (),
) -> str:
    """Prometheus text exposition format (version 0.0.4) of the run's gauges; every sample carries the ``base``
    labels (workspace, host), so that the runs of several workspaces and hosts never collide."""
    from ..checks import COUNTERS, GHOST_AGENTS, LEAKED_SESSIONS, ORPHAN_PROCESSES, ZOMBIE_SESSIONS  # a run's only

    lines: list[str] = []

    def gauge(name: str, help_: str, samples: list[tuple[dict[str, str], float | None]]) -> None:
        lines.append(f"# HELP {PREFIX}_{name} {help_}")
        lines.append(f"# TYPE {PREFIX}_{name} gauge")
        for labels, value in samples:
            if value is None:
                continue  # not known (registry unusable, tmux unreachable): absent, not zero
            every = {**labels, **(base or {})}
            label = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in every.items()) + "}" if every else ""
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
    for name, check_id, help_ in (  # the metrics' names are this output's own (a check id may change, they do not)
        ("ghost_agents", GHOST_AGENTS, "Active entries whose session is gone."),
        ("orphan_processes", ORPHAN_PROCESSES, "Orphan Claude processes."),
        ("zombie_sessions", ZOMBIE_SESSIONS, "Agent sessions without Claude."),
        ("leaked_sessions", LEAKED_SESSIONS, "Finished agents whose session runs."),
        ("registry_count_mismatches", COUNTERS, "Registry counters that differ from what the entries say."),
    ):
        gauge(name, help_, [({}, counts[check_id] if results[check_id].judged else None)])
    gauge(
        "check_passed",
        "1 when the check passed, 0 when it failed or could not be judged.",
        [({"check": cid}, 1.0 if r.status == "pass" else 0.0) for cid, r in results.items()],
    )
    gauge(
        "check_judged",
        "1 when the check could be judged (registry usable, tmux reachable).",
        [({"check": cid}, 1.0 if r.judged else 0.0) for cid, r in results.items()],
    )
    gauge(
        "failing_finding",
        "1 for each failing finding, named as every other output names it (a record by its manager's noun and id).",
        [({"check": cid, "entity": f.entity, "manager": f.manager, **({"program": f.program} if f.program else {})}, 1)
         for cid, r in results.items() for f in r.failing],
    )
    managers = sorted({f.manager for r in results.values() for f in r.findings if f.manager})
    gauge(
        "manager_failing_findings",
        "Failing findings by the manager whose records they were judged against (a conflict's: both, joined by &).",
        [({"manager": m}, float(sum(f.manager == m for r in results.values() for f in r.failing))) for m in managers],
    )
    gauge(
        "waived",
        "Findings a person waived, by check: never failing, never acted on, still counted here.",
        [({"check": cid}, float(len(r.waived))) for cid, r in results.items() if r.judged],
    )
    gauge(
        "snapshot_duration_seconds",
        "Seconds taken to read registries, tmux and processes.",
        [({}, round(snapshot_seconds, 6))],
    )
    gauge("last_run_timestamp_seconds", "When the snapshot was taken (Unix time).", [({}, round(taken_at, 3))])
    if sources:  # one sample per manager a run over several judged
        from ..sources import NAMES  # the sources' table: this module is loaded (for its option) by every pytest run

        gauge("records_source", f"Where the agents' records were read: one of {', '.join(NAMES)}.",
              [({"source": name}, 1) for name in dict.fromkeys(sources)])
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Integers exactly, other floats at full precision (a timestamp must not become 1.79e+09)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    """A label value: UTF-8 (a lone surrogate or an undecodable path byte is written as its escape), then the
    format's own escapes."""
    value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write(run: Run, value: str, base: Path) -> None:
    if value:
        results, figures = run.final
        labels = {"workspace": run.workspace, "host": socket.gethostname()}
        snap = run.current.snapshot  # the one the results were judged on: after the fix when one ran
        names = tuple(p.snapshot.registries.source for p in run.current.parts)
        text = metrics_text(results, figures, snap.duration, snap.taken_at, labels, names)
        write_atomic_text(resolve(value, base), text)
    return None


OUTPUT = Output(
    Option("--metrics-file", "write Prometheus text-format gauges atomically (for node-exporter's textfile collector)"),
    write,
)
