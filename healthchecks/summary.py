"""The seed's figures (registry agents, active agents, Claude processes, sessions, ghosts) for one snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from operator import not_

from .analysis import Analysis
from .checks import GHOST_AGENTS
from .dialect import StatusClass
from .results import Results


@dataclass(frozen=True)
class Figures:
    """None marks a figure whose facts are missing (registry unusable, tmux unreachable): unknown, not zero."""

    registry_agents: int | None
    active_counter: int | None
    active_entries: int | None
    claude_total: int  # every Claude process judged: not defunct, not this suite
    claude_attached: int | None  # needs tmux
    claude_orphan: int | None  # needs tmux and the registry (agent ids are evidence)
    claude_foreign: int | None  # likewise
    agent_sessions: int | None  # needs tmux
    untracked_sessions: int | None  # needs tmux and the registry
    ghosts: int | None

    @property
    def tracked_sessions(self) -> int | None:
        if self.agent_sessions is None or self.untracked_sessions is None:
            return None
        return self.agent_sessions - self.untracked_sessions

    def rows(self) -> list[tuple[str, str]]:
        """The seed guide's table, one (label, value) per line."""
        active = f"{_n(self.active_counter)} (counter) / {_n(self.active_entries)} (entries)"
        claude = (
            f"{self.claude_total} ({_n(self.claude_attached)} attached, "
            f"{_n(self.claude_orphan)} orphan, {_n(self.claude_foreign)} foreign)"
        )
        sessions = (
            f"{_n(self.agent_sessions)} ({_n(self.tracked_sessions)} tracked, {_n(self.untracked_sessions)} untracked)"
        )
        return [
            ("Registry agents", _n(self.registry_agents)),
            ("Active agents", active),
            ("Claude processes", claude),
            ("Agent tmux sessions", sessions),
            ("Ghost agents", _n(self.ghosts)),
        ]


    def states(self) -> list[str]:
        """Per row of rows(): ok, warn (drift, untracked sessions), bad (orphans, ghosts) or unknown (n/a)."""

        def level(value: int | None, bad: str) -> str:
            return "unknown" if value is None else (bad if value else "ok")

        drift = (
            None
            if self.active_counter is None or self.active_entries is None
            else int(self.active_counter != self.active_entries)
        )
        return [
            "unknown" if self.registry_agents is None else "ok",
            "unknown" if self.active_entries is None else level(drift or 0, "warn"),
            level(self.claude_orphan, "bad"),
            level(self.untracked_sessions, "warn"),
            level(self.ghosts, "bad"),
        ]


def _n(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def figures(analysis: Analysis, results: Results) -> Figures:
    snap = analysis.snapshot
    usable, tmux_ok = snap.registries.ok, snap.tmux_ok
    both = usable and tmux_ok
    glob = snap.registries.authority
    # a manager whose scopes are stores of their own (teams) has its records in them, not in the index
    columns = snap.registries.columns  # (the authority's records first)
    held = len(glob.agents) if snap.registries.dialect.members_repeat_authority else len(columns.records)
    classes = analysis.attribution.claude_classes
    ghosts = results.get(GHOST_AGENTS)
    untracked = sum(map(not_, map(analysis.tmux.agents_in, analysis.tmux.agent_sessions)))  # (in C: no generator)
    return Figures(
        registry_agents=held if usable else None,
        active_counter=glob.counters.get("active_agents") if usable else None,
        active_entries=columns.classes[:held].count(StatusClass.ACTIVE) if usable else None,  # in C
        claude_total=len(analysis.attribution.claude),
        claude_attached=len(classes["attached"]) if tmux_ok else None,
        claude_orphan=len(classes["orphan"]) if both else None,
        claude_foreign=len(classes["foreign"]) if both else None,
        agent_sessions=len(analysis.tmux.agent_sessions) if tmux_ok else None,
        untracked_sessions=untracked if both else None,
        ghosts=len(ghosts.failing) if ghosts is not None and ghosts.judged else None,
    )
