"""The seed's figures (registry agents, active agents, Claude processes, sessions, ghosts) for one snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from .analysis import Analysis
from .checks import Finding

Results = dict[str, "list[Finding] | tuple[str, str]"]


@dataclass(frozen=True)
class Figures:
    registry_agents: int | None
    active_counter: int | None
    active_entries: int | None
    claude_attached: int
    claude_orphan: int
    claude_foreign: int
    agent_sessions: int
    untracked_sessions: int
    ghosts: int | None

    @property
    def claude_total(self) -> int:
        return self.claude_attached + self.claude_orphan + self.claude_foreign

    def rows(self) -> list[tuple[str, str]]:
        """The seed guide's table, one (label, value) per line."""
        unknown = "n/a"
        active = f"{_n(self.active_counter)} (counter) / {_n(self.active_entries)} (entries)"
        return [
            ("Registry agents", _n(self.registry_agents)),
            ("Active agents", active),
            (
                "Claude processes",
                f"{self.claude_total} ({self.claude_attached} attached, "
                f"{self.claude_orphan} orphan, {self.claude_foreign} foreign)",
            ),
            (
                "Agent tmux sessions",
                f"{self.agent_sessions} ({self.agent_sessions - self.untracked_sessions} tracked, "
                f"{self.untracked_sessions} untracked)",
            ),
            ("Ghost agents", unknown if self.ghosts is None else str(self.ghosts)),
        ]


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def figures(analysis: Analysis, results: Results) -> Figures:
    regs = analysis.snapshot.registries
    usable = regs.ok
    glob = regs.global_file
    classes = analysis.claude_classes
    ghosts = results.get("ghost_agents")
    untracked = sum(1 for s in analysis.agent_sessions if s.name not in analysis.agents_by_session)
    return Figures(
        registry_agents=len(glob.agents) if usable else None,
        active_counter=glob.counters.get("active_agents") if usable else None,
        active_entries=sum(1 for r in glob.agents if r.status_class == "active") if usable else None,
        claude_attached=len(classes["attached"]),
        claude_orphan=len(classes["orphan"]) if usable else 0,
        claude_foreign=len(classes["foreign"]) if usable else 0,
        agent_sessions=len(analysis.agent_sessions),
        untracked_sessions=untracked if usable else 0,
        ghosts=len(ghosts) if isinstance(ghosts, list) else None,
    )
