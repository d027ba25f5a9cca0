"""The fleet as one picture: tmux servers → agent sessions → Claude processes, plus what lives nowhere (ghost
entries, orphan and foreign Claude). Inline SVG, self-contained, coloured and labelled by class; every group is
folded after a few nodes, so 1,000 sessions stay one readable page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..checks import GHOST_AGENTS, LEAKED_SESSIONS, ZOMBIE_SESSIONS, agent_processes, persons, recorded
from ..programs import CLAUDE
from ..text import for_html as escape

if TYPE_CHECKING:
    from ..analysis import Analysis, LiveSession
    from ..observe import MachineObservation
    from ..results import Results
    from ..run import Run

SHOWN = 12  # nodes drawn per group; the rest is one "+N more" node
COLOURS = {
    "server": "#455a64",
    "healthy": "#2e7d32",
    "zombie": "#ef6c00",
    "leaked": "#f9a825",
    "untracked": "#9e9e9e",
    "ghost": "#c62828",
    "attached": "#66bb6a",
    "orphan": "#b71c1c",
    "foreign": "#78909c",
    "more": "#bdbdbd",
    # a run over several managers (--source all): each one's group, and the processes no one manager owns
    "manager": "#1a237e",
    "person": "#5c6bc0",
    "nobody": "#8d6e63",
    "conflict": "#6a1b9a",
}
MACHINE = ("manager", "person", "nobody", "conflict")  # drawn (and in the legend) only over several managers
NODE_W, NODE_H, GAP, COL = 230, 20, 6, 270


@dataclass(frozen=True)
class Node:
    cls: str
    label: str
    column: int


def _sessions(a: Analysis, results: Results, manager: str) -> dict[str, list[str]]:
    """The agent sessions by class, and the ghost entries: one manager's."""
    failing = {(f.check, f.entity) for r in results.values() for f in r.failing}
    groups: dict[str, list[str]] = {k: [] for k in ("healthy", "zombie", "leaked", "untracked")}
    for s in a.tmux.agent_sessions:
        entity = f"session {s.name}"
        cls = (
            "zombie" if (ZOMBIE_SESSIONS, entity) in failing
            else "leaked" if (LEAKED_SESSIONS, entity) in failing
            else "untracked" if not a.tmux.agents_in(s)
            else "healthy"
        )
        groups[cls].append(_session_label(a, s) if len(groups[cls]) < SHOWN else s.name)  # the rest is folded
    ghosts = results[GHOST_AGENTS].failing if GHOST_AGENTS in results else ()
    groups["ghost"] = [f.label for f in ghosts if f.manager in ("", manager)]
    return groups


def _folded(groups: dict[str, list[str]], column: int) -> list[Node]:
    drawn = []
    for cls, labels in groups.items():
        drawn += [Node(cls, label, column) for label in labels[:SHOWN]]
        if len(labels) > SHOWN:
            drawn.append(Node("more", f"+{len(labels) - SHOWN} more {cls}", column))
    return drawn


def _session_label(a: Analysis, session: LiveSession) -> str:
    """A session by its name, and its agent program when that is another than Claude Code: the one its records
    name, else the one running in its agent panes."""
    program = recorded(a, a.tmux.agents_in(session))
    if program is None and (proc := a.tmux.agent_program(session, a.tmux.agent_panes(session))) is not None:
        program = proc.program
    return f"{session.name} ({program.name})" if program is not None and program is not CLAUDE else session.name


def nodes(run: Run) -> list[Node]:
    """What to draw, from the run's findings and analysis (the state as found)."""
    from ..observe import MachineObservation

    if isinstance(run.observation, MachineObservation):
        return machine_nodes(run.observation)
    a, results = run.observation.analysis, run.results
    drawn: list[Node] = [Node("server", f"tmux {s.label} ({s.state})", 0) for s in a.snapshot.servers]
    classes = a.attribution.claude_classes
    processes = {cls: [f"pid {c.proc.pid}" for c in classes[cls]] for cls in ("attached", "orphan", "foreign")}
    return drawn + _folded(_sessions(a, results, run.observation.parts[0].manager), 1) + _folded(processes, 2)


def machine_nodes(m: MachineObservation) -> list[Node]:
    """Several managers: each one's sessions and ghosts, and the agent processes it owns, under its name; then the
    processes two managers claim, a person's, and nobody's."""
    servers = dict.fromkeys(f"tmux {s.label} ({s.state})" for p in m.parts for s in p.snapshot.servers)
    drawn = [Node("server", label, 0) for label in servers]
    owners: dict[str, list[str]] = {owner: [] for owner in (*(p.manager for p in m.parts), "conflict", "person",
                                                            "nobody")}
    for proc in agent_processes(m.analysis):
        claimed = [manager for manager, found in m.claims.items() if proc.pid in found]
        owner = claimed[0] if len(claimed) == 1 else "conflict" if claimed else (
            "person" if persons(m.analysis, proc) else "nobody")
        owners[owner].append(f"pid {proc.pid}")
    for part in m.parts:
        drawn += [Node("manager", part.manager, 1), *_folded(_sessions(part.analysis, m.results, part.manager), 1)]
        drawn += [Node("manager", part.manager, 2), *_folded({"attached": owners[part.manager]}, 2)]
    return drawn + _folded({k: owners[k] for k in ("conflict", "person", "nobody")}, 2)


def svg(run: Run) -> str:
    drawn = nodes(run)
    rows = [0, 0, 0]
    parts = []
    for node in drawn:
        x, y = 10 + node.column * COL, 40 + rows[node.column] * (NODE_H + GAP)
        rows[node.column] += 1
        dash = ' stroke-dasharray="4 2"' if node.cls == "ghost" else ""
        parts.append(
            f'<g class="hc-node" data-class="{node.cls}"><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" '
            f'rx="3" fill="{COLOURS[node.cls]}" stroke="#333"{dash}/>'
            f'<text x="{x + 6}" y="{y + 14}" font-size="11" fill="#fff">{escape(_short(node))}</text>'
            f"<title>{escape(node.cls)}: {escape(node.label)}</title></g>"
        )
    height = 50 + max(rows) * (NODE_H + GAP)
    heads = "".join(
        f'<text x="{10 + i * COL}" y="24" font-size="13" font-weight="bold">{t}</text>'
        for i, t in enumerate(("tmux servers", "agent sessions and ghost entries", "Claude processes"))
    )
    several = len(run.observation.parts) > 1
    # the manager(s) whose records the picture shows
    source = escape(", ".join(p.manager for p in run.observation.parts) if several else run.snapshot.registries.source)
    legend = f"<tspan>records: {source}   </tspan>" + "".join(
        f'<tspan fill="{COLOURS[c]}">■</tspan><tspan> {c}  </tspan>' for c in COLOURS
        if c != "more" and (several or c not in MACHINE)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="hc-picture" width="{10 + 3 * COL}" height="{height + 20}" '
        f'role="img" aria-label="fleet picture ({source})">{heads}{"".join(parts)}'
        f'<text x="10" y="{height + 10}" font-size="11">{legend}</text></svg>'
    )


def _short(node: Node) -> str:
    label = f"{node.cls}: {node.label}" if node.cls not in ("server", "more") else node.label
    return label if len(label) <= 36 else label[:35] + "…"
