"""Relate a snapshot's parts to each other once, so every check judges from the same facts.

Pure: a snapshot in, plain values out. Nothing here reads the machine.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import tzinfo
from functools import cached_property

from . import processes
from .dialect import DIALECTS, StatusClass
from .dialect import Evidence as Sign
from .processes import Proc
from .records import AgentRecord, Owner, Scope
from .snapshot import Snapshot, pane_of
from .targets import PaneTarget, ProcessTarget, ServerTarget
from .tmux import Pane, TmuxServer, sanitized


@dataclass(frozen=True)
class LiveSession:
    server: str
    name: str
    created: float
    panes: tuple[Pane, ...]

    @property
    def id(self) -> str:
        return self.panes[0].session_id

    @property
    def attached(self) -> int:
        """Clients attached: a person looking at this session."""
        return max(p.attached for p in self.panes)


class Agent:
    """One agent id with every registry record that mentions it (global first).

    Made for every agent of every snapshot, so its facts are computed once, here, and kept in slots.
    """

    __slots__ = ("_ended", "_started", "active", "cursor_pid", "id", "owner", "pane", "records", "server", "session",
                 "terminal")

    def __init__(self, id: str, records: list[AgentRecord]) -> None:
        self.id = id
        self.records = records
        self._started: float | bool | None = False  # False: not parsed yet (timestamps are parsed on demand)
        self._ended: float | bool | None = False
        self.session = sanitized(records[0].tmux_session)  # as tmux stores it: `.` and `:` become `_`
        self.cursor_pid = next((r.cursor_pid for r in records if r.cursor_pid), None)  # E3's cursor backend
        self.pane, self.server, self.owner = records[0].pane, records[0].server, records[0].owner  # a teammate's
        first = records[0].status_class
        if any(r.status_class is not first for r in records):  # records that disagree: rare
            classes = {r.status_class for r in records}
            self.active, self.terminal = StatusClass.ACTIVE in classes, classes == {StatusClass.TERMINAL}
        else:
            self.active, self.terminal = first is StatusClass.ACTIVE, first is StatusClass.TERMINAL

    def started_at(self, tz: tzinfo | None) -> float | None:
        if self._started is False:  # one zone per analysis: the first answer is the answer
            self._started = max((t for r in self.records if (t := r.started_at(tz)) is not None), default=None)
        return self._started  # type: ignore[return-value]

    def ended_at(self, tz: tzinfo | None) -> float | None:
        if self._ended is False:
            self._ended = max((t for r in self.records if (t := r.ended_at(tz)) is not None), default=None)
        return self._ended  # type: ignore[return-value]


@dataclass(frozen=True)
class Evidence:
    """What ties a Claude process outside every pane to this workspace, and to an orchestrator's launch.

    Only both together are exclusive enough to act on: a person's `claude -p` may name an agent or
    run in the project directory, and another workspace's agent has the same launch shape.
    """

    workspace: tuple[str, ...] = ()
    launch: tuple[str, ...] = ()

    @property
    def exclusive(self) -> bool:
        return bool(self.workspace and self.launch)

    def __bool__(self) -> bool:
        return bool(self.workspace or self.launch)

    def __or__(self, other: Evidence) -> Evidence:
        return Evidence(self.workspace + other.workspace, self.launch + other.launch)

    def describe(self) -> str:
        return "; ".join(dict.fromkeys(self.workspace + self.launch))


@dataclass(frozen=True)
class Classified:
    """A Claude process and why it is in its class (attached, orphan or foreign): the evidence used."""

    proc: Proc
    reason: str


class Analysis:
    """Derived views of one snapshot, computed lazily and at most once."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.settings = snapshot.settings
        self.tz = snapshot.settings.tz
        self.now = snapshot.taken_at
        self.workspace = os.path.realpath(snapshot.settings.workspace)
        self._made: dict[str, Agent] = {}  # agents made so far (see agent())

    def past_grace(self, moment: float | None) -> bool:
        """Within grace only when known and less than grace away, either side: a timestamp far in the
        future (another time zone, a skewed clock) must not protect an agent for ever."""
        return moment is None or abs(self.now - moment) >= self.settings.grace

    # -- registry side -------------------------------------------------------------------------
    @cached_property
    def records(self) -> dict[str, list[AgentRecord]]:
        """Every agent id's records, global first, in registry order: one pass over the files."""
        records: dict[str, list[AgentRecord]] = {}
        for file in self.snapshot.registries.scopes:
            for record in file.agents:
                if (found := records.get(record.id)) is None:
                    records[record.id] = [record]
                else:
                    found.append(record)
        return records

    def agent(self, agent_id: str) -> Agent | None:
        """One agent, made on first use: most checks look at a few hundred of 10,000."""
        if (made := self._made.get(agent_id)) is None and (recs := self.records.get(agent_id)):
            made = self._made[agent_id] = Agent(agent_id, recs)
        return made

    @cached_property
    def agents(self) -> dict[str, Agent]:
        """Every agent (for the few places that look at all of them: --prune, unknown statuses)."""
        return {aid: self.agent(aid) for aid in self.records}  # type: ignore[misc]

    @cached_property
    def active_agents(self) -> list[Agent]:
        active = StatusClass.ACTIVE
        ids = {r.id for f in self.snapshot.registries.scopes for r in f.agents if r.status_class is active}
        return [self.agent(aid) for aid in self.records if aid in ids]  # type: ignore[misc]

    @cached_property
    def agents_by_session(self) -> dict[str, list[Agent]]:
        """Agents by the name of their session, for the sessions live on any server seen (the only ones asked)."""
        live = self.sessions.keys() | self.other_sessions.keys()
        result: dict[str, list[Agent]] = defaultdict(list)
        for aid, recs in self.records.items():
            if sanitized(recs[0].tmux_session) in live:
                result[sanitized(recs[0].tmux_session)].append(self.agent(aid))  # type: ignore[arg-type]
        return result

    @cached_property
    def client_dirs(self) -> frozenset[str]:
        """Where this workspace's agents run Claude: each task's `client_cwd`, else the workspace's parent."""
        dirs = {os.path.dirname(self.workspace)}
        dirs |= {os.path.realpath(c) for f in self.snapshot.registries.scopes for c in f.client_dirs}
        return frozenset(d for d in dirs if d != "/")

    # -- tmux side -----------------------------------------------------------------------------
    @staticmethod
    def _sessions_of(servers: tuple[TmuxServer, ...]) -> dict[str, list[LiveSession]]:
        grouped: dict[tuple[str, str], list[Pane]] = defaultdict(list)
        for server in servers:
            for pane in server.panes:
                grouped[(server.label, pane.session)].append(pane)
        result: dict[str, list[LiveSession]] = defaultdict(list)
        for (server, name), panes in grouped.items():
            result[name].append(LiveSession(server, name, panes[0].session_created, tuple(panes)))
        return result

    @cached_property
    def sessions(self) -> dict[str, list[LiveSession]]:
        """Live sessions of the checked servers by name; a name can live on more than one of them."""
        return self._sessions_of(self.snapshot.servers)

    @cached_property
    def other_sessions(self) -> dict[str, list[LiveSession]]:
        """Live sessions of this user's tmux servers that were not asked for: seen, never acted on."""
        return self._sessions_of(self.snapshot.other_servers)

    @cached_property
    def agent_sessions(self) -> list[LiveSession]:
        prefix = self.settings.session_prefix
        return [s for name, group in self.sessions.items() if name.startswith(prefix) for s in group]

    @cached_property
    def stopped_servers(self) -> list[TmuxServer]:
        """Checked servers with no server running: right socket? right user? Every agent looks dead."""
        return [s for s in self.snapshot.servers if s.state == "no-server"]

    def clients_of(self, server: str, session: str) -> list[str]:
        """The terminals attached to a session of a checked server (who a kill would throw out)."""
        return [c.tty for s in self.snapshot.servers if s.label == server for c in s.clients if c.session == session]

    def roots(self, session: LiveSession) -> tuple[ProcessTarget, ...]:
        """The session's live pane processes, identified as the snapshot saw them (dead panes have none)."""
        by_pid = self.snapshot.by_pid
        live = [p for p in session.panes if not p.dead and p.pid in by_pid]
        return tuple(ProcessTarget(p.pid, by_pid[p.pid].start_ticks) for p in live)

    # -- process side --------------------------------------------------------------------------
    @cached_property
    def children(self) -> dict[int, list[int]]:
        return processes.children_of(self.snapshot.processes)

    @cached_property
    def pane_of(self) -> dict[int, tuple[str, str]]:
        """pid -> (server, session) for every process that descends from a live pane of a checked server."""
        return pane_of(self.children, self.snapshot.servers)

    @cached_property
    def _server_names(self) -> dict[int, str]:
        return {s.server_pid: s.label for s in (*self.snapshot.servers, *self.snapshot.other_servers) if s.server_pid}

    @cached_property
    def claude(self) -> list[Proc]:
        """Claude processes that can be judged: not defunct (a defunct one only waits for its parent)."""
        return [p for p in self.snapshot.processes if p.is_claude and not p.defunct]

    @cached_property
    def own_sessions(self) -> set[tuple[str, str]]:
        """(server, session) of the panes this suite runs in (an agent checking its own fleet): never judged."""
        return {self.pane_of[pid] for pid in self.snapshot.self_pids if pid in self.pane_of}

    @cached_property
    def _id_pattern(self) -> re.Pattern[str] | None:
        """Agent ids as whole tokens: `a` must not match inside `data`, nor an id inside a longer one."""
        shape = self.snapshot.registries.dialect.id_shape
        ids = sorted((i for i in self.records if shape.fullmatch(i)), key=len, reverse=True)
        return re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, ids)) + r")(?![\w-])") if ids else None

    @cached_property
    def _signs(self) -> frozenset[Sign]:
        return self.snapshot.registries.dialect.evidence

    @cached_property
    def _path_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.workspace) + r"(?=/|$|\s|')")

    def _inside_workspace(self, path: str) -> bool:
        return path == self.workspace or path.startswith(self.workspace + "/")

    def _ties(self, proc: Proc) -> tuple[str, ...]:
        """What in a process's own argv, cwd and open files names this workspace."""
        found = []
        kinds = self._signs  # the kinds of evidence this manager's dialect admits
        joined = " ".join(proc.argv)
        if Sign.RECORD_ID_IN_ARGS in kinds and self._id_pattern is not None and (m := self._id_pattern.search(joined)):
            found.append(f"its arguments name agent {m.group(1)}")
        if Sign.PATH_IN_ARGS in kinds and self._path_pattern.search(joined):
            found.append("its arguments name a path inside the workspace")
        if proc.cwd:
            cwd = os.path.realpath(proc.cwd)
            if Sign.CWD_IN_WORKSPACE in kinds and self._inside_workspace(cwd):
                found.append(f"its working directory {proc.cwd} is inside the workspace")
            elif Sign.CWD_IS_CLIENT_DIR in kinds and cwd in self.client_dirs:
                found.append(f"its working directory {proc.cwd} is this workspace's client directory")
        held = [f for f in proc.files if f.fd != 0 and self._inside_workspace(os.path.realpath(f.path))]
        if Sign.HOLDS_WORKSPACE_FILE in kinds and held:
            found.append(f"it holds {held[0].path} open")
        return tuple(found)

    def _own_evidence(self, proc: Proc) -> Evidence:
        launch = ()
        dialect = self.snapshot.registries.dialect
        if Sign.ID_AFTER_FLAG in self._signs and (carried := dialect.carried_id(proc.argv)) in self.records:
            # the manager's own launch put this record's id after its flag: both the tie and the launch
            sign = f"its arguments carry {dialect.id_flag} {carried}, a {dialect.nouns[0]} of these records"
            return Evidence((sign,), (sign,))
        if Sign.LAUNCH_FLAGS in self._signs and proc.headless and all(flag in proc.argv for flag in dialect.launch):
            launch = ("its arguments are the orchestrator's launch (--print --output-format stream-json ...)",)
        stdin = next((f for f in proc.files if f.fd == 0), None)
        if Sign.STDIN_FROM_WORKSPACE in self._signs and stdin and self._inside_workspace(os.path.realpath(stdin.path)):
            # `claude ... < <task>/prompt`: the orchestrator's own redirection, into this workspace
            both = (f"its standard input is {stdin.path}, a file of this workspace",)
            return Evidence(self._ties(proc) + both, launch + both)
        return Evidence(self._ties(proc), launch)

    @cached_property
    def groups(self) -> dict[int, list[Proc]]:
        result: dict[int, list[Proc]] = defaultdict(list)
        for proc in self.snapshot.processes:
            if proc.pid not in self.snapshot.self_pids:
                result[proc.pgid].append(proc)
        return result

    def evidence(self, proc: Proc) -> Evidence:
        """Every sign that a Claude process outside every pane is a leaked agent of this workspace.

        Process-group signs come only from the pipeline it was launched in (the `tee` writing this
        workspace's log beside it: the orchestrator's pipeline into this workspace, so they count as
        both), never from what it launched itself: a person's Claude hosting the orchestrator's MCP
        server has that server, naming the workspace, in its group.
        """
        found = self._own_evidence(proc)
        if Sign.PIPELINE_WRITES_WORKSPACE not in self._signs:
            return found
        launched = set(processes.descendants(self.children, proc.pid))  # itself and what it started
        for member in self.groups.get(proc.pgid, []):
            if member.pid in launched or member.is_claude:
                continue
            if self._path_pattern.search(" ".join(member.argv)):  # its arguments only: a cwd proves nothing
                sign = f"process {member.pid} ({member.name}) of its pipeline names a path inside the workspace"
                found = found | Evidence((sign,), (sign,))
                break
        return found

    @cached_property
    def claude_classes(self) -> dict[str, list[Classified]]:
        """Claude processes sorted into attached / orphan / foreign, each with the reason (and evidence) used."""
        classes: dict[str, list[Classified]] = {k: [] for k in ("attached", "orphan", "foreign")}
        for proc in self.claude:
            if where := self.pane_of.get(proc.pid):
                classes["attached"].append(Classified(proc, f"runs in session {where[1]} on tmux server {where[0]}"))
            elif proc.pid in self.snapshot.self_pids:
                continue  # the Claude this suite runs under: never an orphan, never signalled
            elif (server := self.snapshot.in_tmux.get(proc.pid)) is not None:
                name = self._server_names.get(server, f"pid {server}")
                where = "in a dead pane's place or a tmux job" if name in self._checked_labels else "in a pane"
                reason = f"runs {where} of tmux server {name}, which is not checked here; left alone"
                classes["foreign"].append(Classified(proc, reason))
            else:
                found = self.evidence(proc)
                if found.exclusive:
                    classes["orphan"].append(Classified(proc, f"this workspace's agent: {found.describe()}"))
                else:
                    classes["foreign"].append(Classified(proc, self._foreign_reason(proc, found)))
        return classes

    @cached_property
    def _checked_labels(self) -> set[str]:
        return {s.label for s in self.snapshot.servers}

    def _foreign_reason(self, proc: Proc, found: Evidence) -> str:
        mine = self.snapshot.registries.dialect.manager
        for dialect in DIALECTS:
            if dialect.manager != mine and (sign := dialect.launched(proc.argv)):
                return f"{dialect.manager}'s (its arguments carry {sign}), not a manager this run checks; left alone"
        if found:
            return f"not exclusive to this workspace ({found.describe()}); left alone"
        if not proc.headless and len(proc.argv) > 1:
            return "interactive (no --print), so a person's, not an agent; left alone"
        return "not attributable to this workspace; left alone"

    @cached_property
    def sessions_with_claude(self) -> set[tuple[str, str]]:
        """(server, session) pairs whose panes run at least one Claude process."""
        return {self.pane_of[j.proc.pid] for j in self.claude_classes["attached"]}

    # -- records placed by pane, owned by a process (Claude Code Agent Teams) ---------------------------------------
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
        for proc in self.claude:
            if proc.pid not in self.snapshot.self_pids and (carried := dialect.carried_id(proc.argv)):
                found[carried].append(proc)
        return found

    def in_pane(self, agent: Agent) -> Pane | None:
        """Its recorded pane, live on its recorded server (None: the server or the pane is gone)."""
        server = self.server_at(agent.server)
        return self._panes.get((os.path.realpath(agent.server), agent.pane)) if server and agent.pane else None

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
        tree = set(processes.descendants(self.children, pane.pid))
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
    def owned_scopes(self) -> list[Scope]:
        return [s for s in self.snapshot.registries.scopes if s.owner is not None and not s.errors]

    @cached_property
    def _pane_roots(self) -> dict[int, tuple[TmuxServer, Pane]]:
        """pid -> (server, pane) for each live pane's own process on a checked server."""
        return {p.pid: (s, p) for s in self.snapshot.servers for p in s.panes if not p.dead}

    def pane_target(self, proc: Proc) -> PaneTarget | ProcessTarget:
        """A process that is a live pane's own process on a checked server: the pane (it goes with it); else the
        process alone."""
        root = ProcessTarget(proc.pid, proc.start_ticks)
        if (found := self._pane_roots.get(proc.pid)) is None:
            return root
        server, pane = found
        return PaneTarget(server.label, server.server_pid, pane.pane_id, root)

    def attached_to(self, target: PaneTarget | ServerTarget) -> str:
        """Who is attached to the target's session(s) now, as a person reads it ('' when nobody)."""
        server = next((s for s in self.snapshot.servers if s.label == target.server), None)
        if server is None:
            return ""
        ids = {target.pane_id} if isinstance(target, PaneTarget) else {p.pane_id for p in server.panes}
        sessions = {p.session for p in server.panes if p.pane_id in ids and p.attached}
        return ", ".join(f"session {name} ({', '.join(self.clients_of(server.label, name)) or 'a client'})"
                         for name in sorted(sessions))
