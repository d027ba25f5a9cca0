"""Records placed by a pane and scopes owned by a process (Claude Code Agent Teams): is the place still the
record's, is the owner alive, which processes carry a record's id."""

from __future__ import annotations

import os
from collections import defaultdict
from functools import cached_property
from typing import TYPE_CHECKING

from .. import processes
from ..processes import Proc
from ..records import Owner, Scope
from ..tmux import Pane, TmuxServer

if TYPE_CHECKING:  # the analysis that composes this view (its context and the other views)
    from . import Analysis
    from .agents import Agent


class OwnedView:
    """The owned view: pane-placed records, the owners of scopes, and the processes carrying a record's id."""

    def __init__(self, a: Analysis) -> None:
        self.a = a
        self.snapshot = a.snapshot

    @cached_property
    def _checked_by_socket(self) -> dict[str, TmuxServer]:
        """Checked servers by the real path of their socket: how a record names the server its pane is on."""
        return {os.path.realpath(s.socket_path): s for s in self.snapshot.servers if s.socket_path}

    @cached_property
    def _panes(self) -> dict[tuple[str, str], Pane]:
        return {(path, p.pane_id): p for path, s in self._checked_by_socket.items() for p in s.panes}

    def server_at(self, socket: str | None) -> TmuxServer | None:
        return self._checked_by_socket.get(os.path.realpath(socket)) if socket else None

    @cached_property
    def carriers(self) -> dict[str, list[Proc]]:
        """Record id -> the live Claude processes whose arguments carry it right after the manager's id flag
        (exactly: the flag as one argument, the id as the next), this suite's own tree left out."""
        dialect = self.snapshot.registries.dialect
        found: dict[str, list[Proc]] = defaultdict(list)
        if dialect.id_flag is None:
            return found
        for proc in self.a.attribution.claude:
            if proc.pid not in self.snapshot.self_pids and (carried := dialect.carried_id(proc.argv)):
                found[carried].append(proc)
        return found

    def in_pane(self, agent: Agent) -> Pane | None:
        """Its recorded pane, live on its recorded server (None: the server or the pane is gone)."""
        if not (agent.pane and agent.server and self.server_at(agent.server)):
            return None
        return self._panes.get((os.path.realpath(agent.server), agent.pane))

    def pane_problem(self, agent: Agent) -> str | None:
        """Why a pane-placed record's place does not hold it, or None. A pane id is reused freely (#77559): only a
        process carrying the record's own id in that pane's tree is the record's."""
        if self.server_at(agent.server) is None:
            return f"pane {agent.pane}: its tmux server is gone"
        pane = self.in_pane(agent)
        if pane is None:
            return f"pane {agent.pane} is gone from tmux server {agent.server}"
        if pane.dead:
            return f"pane {agent.pane} is dead (its process exited)"
        tree = set(processes.descendants(self.a.children, pane.pid))
        if not any(p.pid in tree for p in self.carriers.get(agent.id, ())):
            flag = self.snapshot.registries.dialect.id_flag
            return f"pane {agent.pane} runs no process carrying {flag} {agent.id} (its pane id was reused?)"
        return None

    def owner_alive(self, owner: Owner | None) -> bool | None:
        """True/False when the owner's identity (pid + start ticks) proves it; None when nothing can: a live
        process with that pid is never called dead unless its start time differs (a reused pid)."""
        if owner is None or not owner.here:  # a pid of another pid namespace says nothing here
            return None
        proc = self.snapshot.by_pid.get(owner.pid)
        if proc is None or proc.defunct:
            return False
        if owner.start_ticks is None:
            return None
        return proc.start_ticks == owner.start_ticks

    @cached_property
    def scopes(self) -> list[Scope]:
        return [s for s in self.snapshot.registries.scopes if s.owner is not None and not s.errors]

