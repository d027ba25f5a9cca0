"""Relate a snapshot's parts to each other once, so every check judges from the same facts.

Pure: a snapshot in, plain values out. Nothing here reads the machine.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property

from . import processes
from .processes import Proc
from .registry import AgentRecord
from .snapshot import Snapshot, pane_of
from .tmux import Pane


@dataclass(frozen=True)
class LiveSession:
    server: str
    name: str
    created: float
    panes: tuple[Pane, ...]

    @property
    def id(self) -> str:
        return self.panes[0].session_id


@dataclass(frozen=True)
class Agent:
    """One agent id with every registry record that mentions it (global first)."""

    id: str
    records: tuple[AgentRecord, ...]

    @property
    def session(self) -> str:
        return self.records[0].tmux_session

    @property
    def active(self) -> bool:
        return any(r.status_class == "active" for r in self.records)

    @property
    def terminal(self) -> bool:
        return all(r.status_class == "terminal" for r in self.records)

    @property
    def started_at(self) -> float | None:
        return max((r.started_at for r in self.records if r.started_at is not None), default=None)

    @property
    def ended_at(self) -> float | None:
        return max((r.ended_at for r in self.records if r.ended_at is not None), default=None)


class Analysis:
    """Derived views of one snapshot, computed lazily and at most once."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.settings = snapshot.settings
        self.now = snapshot.taken_at
        self.workspace = os.path.realpath(snapshot.settings.workspace)

    def past_grace(self, moment: float | None) -> bool:
        """Unknown times count as old: the grace only protects what we know just started."""
        return moment is None or self.now - moment >= self.settings.grace

    # -- registry side -------------------------------------------------------------------------
    @cached_property
    def agents(self) -> dict[str, Agent]:
        records: dict[str, list[AgentRecord]] = defaultdict(list)
        for file in self.snapshot.registries.files:
            for record in file.agents:
                records[record.id].append(record)
        return {aid: Agent(aid, tuple(recs)) for aid, recs in records.items()}

    @cached_property
    def agents_by_session(self) -> dict[str, list[Agent]]:
        result: dict[str, list[Agent]] = defaultdict(list)
        for agent in self.agents.values():
            result[agent.session].append(agent)
        return result

    # -- tmux side -----------------------------------------------------------------------------
    @cached_property
    def sessions(self) -> dict[str, list[LiveSession]]:
        """Live sessions by name; a name can live on more than one checked server."""
        grouped: dict[tuple[str, str], list[Pane]] = defaultdict(list)
        for server in self.snapshot.servers:
            for pane in server.panes:
                grouped[(server.label, pane.session)].append(pane)
        result: dict[str, list[LiveSession]] = defaultdict(list)
        for (server, name), panes in grouped.items():
            result[name].append(LiveSession(server, name, panes[0].session_created, tuple(panes)))
        return result

    @cached_property
    def agent_sessions(self) -> list[LiveSession]:
        prefix = self.settings.session_prefix
        return [s for name, group in self.sessions.items() if name.startswith(prefix) for s in group]

    # -- process side --------------------------------------------------------------------------
    @cached_property
    def children(self) -> dict[int, list[int]]:
        return processes.children_of(self.snapshot.processes)

    @cached_property
    def pane_of(self) -> dict[int, tuple[str, str]]:
        """pid -> (server, session) for every process that descends from a live pane."""
        return pane_of(self.children, self.snapshot.servers)

    @cached_property
    def claude(self) -> list[Proc]:
        """Claude processes that can be judged: not defunct (a defunct one only waits for its parent)."""
        return [p for p in self.snapshot.processes if p.is_claude and not p.defunct]

    @cached_property
    def own_sessions(self) -> set[tuple[str, str]]:
        """(server, session) of the panes this suite runs in (an agent checking its own fleet): never judged."""
        return {self.pane_of[pid] for pid in self.snapshot.self_pids if pid in self.pane_of}

    @cached_property
    def _live_panes(self) -> dict[str, tuple[int | None, dict[str, tuple[str, str]]]]:
        """socket path -> (server pid, pane id -> (server, session)) for every reachable checked server."""
        return {
            os.path.realpath(s.socket_path): (s.server_pid, {p.pane_id: (s.label, p.session) for p in s.panes})
            for s in self.snapshot.servers
            if s.reachable
        }

    def env_pane(self, proc: Proc) -> tuple[str, tuple[str, str] | None] | None:
        """From TMUX/TMUX_PANE, if started on a checked server: (where, its live (server, session) or None)."""
        if not proc.tmux_env:
            return None
        socket, _, rest = proc.tmux_env.partition(",")
        server_pid = rest.partition(",")[0]
        checked = self._live_panes.get(os.path.realpath(socket))
        if checked is None:
            return None
        live_pid, panes = checked
        pane = proc.tmux_pane or "?"
        live = panes.get(pane) if str(live_pid) == server_pid else None
        return f"pane {pane} of tmux server {socket}", live

    def attached_to(self, proc: Proc) -> tuple[str, str] | None:
        """The (server, session) a Claude process runs in: by descent from a pane, or by its TMUX pane."""
        if proc.pid in self.pane_of:
            return self.pane_of[proc.pid]
        env = self.env_pane(proc)
        return env[1] if env else None

    @cached_property
    def _id_pattern(self) -> re.Pattern[str] | None:
        ids = sorted(self.agents, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, ids))) if ids else None

    def _inside_workspace(self, path: str) -> bool:
        return path == self.workspace or path.startswith(self.workspace + "/")

    def own_evidence(self, proc: Proc) -> str | None:
        """Why this process belongs to this workspace, from its own argv and cwd."""
        joined = " ".join(proc.argv)
        if self._id_pattern is not None and (m := self._id_pattern.search(joined)):
            return f"its arguments name agent {m.group(0)}"
        if re.search(re.escape(self.workspace) + r"(/|$|\s|')", joined):
            return "its arguments name a path inside the workspace"
        if proc.cwd and self._inside_workspace(os.path.realpath(proc.cwd)):
            return f"its working directory {proc.cwd} is inside the workspace"
        return None

    @cached_property
    def groups(self) -> dict[int, list[Proc]]:
        result: dict[int, list[Proc]] = defaultdict(list)
        for proc in self.snapshot.processes:
            if proc.pid not in self.snapshot.self_pids:
                result[proc.pgid].append(proc)
        return result

    def evidence(self, proc: Proc) -> str | None:
        """Proof that an unattached Claude process is a leaked agent of this workspace, or None.

        The orchestrator always runs Claude headless (--print), so an interactive Claude is a
        person's and never an orphan. Process-group evidence comes only from the pipeline it was
        launched in (the `tee` beside it), never from what it launched itself: a person's Claude
        hosting the orchestrator's MCP server has that server, naming the workspace, in its group.
        """
        if not proc.headless:
            return None
        if reason := self.own_evidence(proc):
            return reason
        launched = set(processes.descendants(self.children, proc.pid))  # itself and what it started
        for member in self.groups.get(proc.pgid, []):
            if member.pid in launched:
                continue
            if reason := self.own_evidence(member):
                return f"process {member.pid} of its process group: {reason}"
        env = self.env_pane(proc)
        if env and env[1] is None:
            return f"it runs headless (--print) and was started in {env[0]}, which is gone"
        return None

    @cached_property
    def claude_classes(self) -> dict[str, list[tuple[Proc, str]]]:
        """Claude processes sorted into attached / orphan / foreign, each with a reason."""
        classes: dict[str, list[tuple[Proc, str]]] = {k: [] for k in ("attached", "orphan", "foreign")}
        for proc in self.claude:
            if where := self.attached_to(proc):
                classes["attached"].append((proc, f"runs in session {where[1]} on tmux server {where[0]}"))
            elif proc.pid in self.snapshot.self_pids:
                continue  # the Claude this suite runs under: never an orphan, never signalled
            elif reason := self.evidence(proc):
                classes["orphan"].append((proc, reason))
            elif not proc.headless:
                classes["foreign"].append((proc, "interactive (no --print), so a person's, not an agent; left alone"))
            else:
                classes["foreign"].append((proc, "not attributable to this workspace; left alone"))
        return classes

    @cached_property
    def sessions_with_claude(self) -> set[tuple[str, str]]:
        """(server, session) pairs whose panes run at least one Claude process."""
        return {where for p, _ in self.claude_classes["attached"] if (where := self.attached_to(p))}
