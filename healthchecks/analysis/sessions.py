"""The tmux side of an analysis: live sessions, who shows and watches them, and which pane a process runs in."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import cached_property, partial
from itertools import chain, repeat
from operator import attrgetter, is_, itemgetter
from typing import TYPE_CHECKING, NamedTuple, cast

from .. import processes
from ..idle import idle
from ..processes import Proc
from ..targets import PaneTarget, ProcessTarget, ServerTarget
from ..tmux import Pane, State, TmuxServer

if TYPE_CHECKING:  # the analysis that composes this view (its context and the other views)
    from . import Analysis
    from .agents import Agent


class LiveSession(NamedTuple):
    """One live session of one server (a tuple: one is made for every live session of every snapshot)."""

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


class TmuxView:
    """The tmux view: the checked servers' live sessions (and those of servers not asked for), the sessions that
    show a window, the clients watching, and the pane each process runs in."""

    def __init__(self, a: Analysis) -> None:
        self.a = a
        self.snapshot = a.snapshot
        self._agents_on: dict[tuple[str, str], list[Agent]] = {}  # agents_on's answers so far (asked 4x a session)

    @staticmethod
    def _sessions_of(servers: tuple[TmuxServer, ...]) -> dict[str, list[LiveSession]]:
        if not _labels_unique(servers):  # two servers under one label: their panes are one label's (never so far)
            return _grouped_sessions(servers)
        result: dict[str, list[LiveSession]] = {}
        for server in servers:
            sessions = _server_sessions(server)
            if not result:  # (the common case: one server) a dict of one-session lists, made in C
                result = dict(zip(map(_LIVE_NAME, sessions), map(list, zip(sessions)), strict=True))
                continue
            for session in sessions:
                result.setdefault(session.name, []).append(session)
        return result

    @cached_property
    def sessions(self) -> dict[str, list[LiveSession]]:
        """Live sessions of the checked servers by name; a name can live on more than one of them."""
        return self._sessions_of(self.snapshot.servers)

    @cached_property
    def other_sessions(self) -> dict[str, list[LiveSession]]:
        """Live sessions of this user's tmux servers that were not asked for: seen, never acted on."""
        return self._sessions_of(self.snapshot.other_servers)

    def session_of(self, agent: Agent) -> LiveSession | None:
        """The agent's live session on a checked server: on its own server when its record names one."""
        if not (live := self.sessions.get(agent.session)):
            return None
        if agent.server is None:  # most records name no server: any checked one's (no generator made)
            return live[0]
        names = self._server_aliases
        return next((s for s in live if agent.server in names.get(s.server, (s.server,))), None)

    def agents_in(self, session: LiveSession) -> list[Agent]:
        """The agents whose session this live one may be (agents_on its server and name: asked 3x a session, its
        answer looked up here first)."""
        if (found := self._agents_on.get((session.server, session.name))) is not None:
            return found
        return self.agents_on(session.server, session.name)

    def agents_on(self, server: str, name: str) -> list[Agent]:
        """The agents whose session is ``name`` on the checked server ``server``: named so, and on that server when a
        record names its own (two Gas Town towns both have an hq-deacon: another town's is never this town's
        agent's). Every lookup of a session's records asks this, the checks and the plan alike: each answer is
        worked out once (the same list each time: never changed by who asks)."""
        if (found := self._agents_on.get(key := (server, name))) is not None:
            return found
        if not (named := self.a.records.agents_by_session.get(name)):
            found = []
        elif self._servers_named:
            names = self._server_aliases.get(server, (server,))
            found = [agent for agent in named if agent.server is None or agent.server in names]
        else:  # no record names a server: each of them may be on any checked one (a copy in C, no comprehension)
            found = named.copy()
        self._agents_on[key] = found
        return found

    @cached_property
    def _servers_named(self) -> bool:
        """Whether a record of an agent with a live session's name names the one server it lives on (Gas Town's
        towns, agent-deck's sockets), read once for all (in C), not once a session."""
        agents = chain.from_iterable(self.a.records.agents_by_session.values())
        return not all(map(is_, map(_SERVER, agents), repeat(None)))

    @cached_property
    def _server_aliases(self) -> dict[str, tuple[str, ...]]:
        """Every name a checked server was reached by (a socket name and its path are one server)."""
        return {s.label: (s.label, *s.aliases) for s in self.snapshot.servers}

    @cached_property
    def session_prefix(self) -> str | tuple[str, ...]:
        """What this fleet's sessions are called: as asked, else as the records' manager names them."""
        return self.a.settings.session_prefix or self.snapshot.registries.dialect.session_prefix

    @cached_property
    def agent_sessions(self) -> list[LiveSession]:
        """The live sessions named like this fleet's; none for a manager that names no sessions (its agents live in
        panes): another manager's sessions on the same server are not its untracked ones."""
        prefix = self.session_prefix
        if not prefix:
            return []
        helpers = self.snapshot.registries.dialect.helper_prefixes  # its paired shells: never agents
        named = self.a.records.agents_by_session
        return [s for name, group in self.sessions.items() if name.startswith(prefix)
                and not (helpers and name.startswith(helpers) and name not in named) for s in group]

    def agent_panes(self, session: LiveSession) -> tuple[Pane, ...]:
        """The panes holding the session's agent: every pane, or the dialect's agent pane of its first window (tmux
        lists windows in index order); none when that pane is gone."""
        index = self.snapshot.registries.dialect.agent_pane
        if index is None:
            return session.panes
        first = session.panes[0].window_id
        return tuple(p for p in session.panes if p.window_id == first and p.index == index)[:1]

    @cached_property
    def stopped_servers(self) -> list[TmuxServer]:
        """Checked servers with no server running: right socket? right user? Every agent looks dead."""
        return [s for s in self.snapshot.servers if s.state is State.NO_SERVER]

    @cached_property
    def _shown_by(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(server, window id) -> every session of a checked server that shows the window: its own session,
        the other sessions of its group, sessions that link it. tmux lists the window's panes under each."""
        servers = self.snapshot.servers
        if not _labels_unique(servers):  # two servers under one label: one label's windows (never so far)
            return _shown_by_panes([(s.label, p) for s in servers for p in s.panes])
        found: dict[tuple[str, str], tuple[str, ...]] = {}
        for server in servers:
            found.update(_server_windows(server))
        return found

    def sharing(self, session: LiveSession) -> set[str]:
        """The other sessions that show one of this session's windows (its group, a dashboard linking one)."""
        return {
            name for p in session.panes for name in self._shown_by.get((session.server, p.window_id), ())
        } - {session.name}

    def shared_windows(self, session: LiveSession) -> set[str]:
        """This session's windows that another session shows too: killing the session leaves them to that one."""
        return {p.window_id for p in session.panes if len(self._shown_by.get((session.server, p.window_id), ())) > 1}

    def _live(self, server: str, name: str) -> list[LiveSession]:
        return [s for s in self.sessions.get(name, []) if s.server == server]

    def _watching(self, server: str, name: str) -> set[str]:
        """The session and every session that shows one of its windows: a client of any of them sees it."""
        return {name}.union(*(self.sharing(s) for s in self._live(server, name)))

    def attached(self, session: LiveSession) -> int:
        """Clients attached to the session or to any session that shows one of its windows: a person looking."""
        server = session.server
        return sum(s.attached for n in self._watching(server, session.name) for s in self._live(server, n))

    def clients_of(self, server: str, session: str) -> list[str]:
        """The terminals attached to a session of a checked server, or to a session sharing one of its windows
        (who a kill would disturb)."""
        names = self._watching(server, session)
        return [
            c.tty + ("" if c.session == session else f" (on {c.session})")
            for s in self.snapshot.servers
            if s.label == server
            for c in s.clients
            if c.session in names
        ]

    def roots(self, session: LiveSession, leave: set[str] | frozenset[str] = frozenset()) -> tuple[ProcessTarget, ...]:
        """The session's live pane processes, identified as the snapshot saw them (dead panes have none), but for
        those of the windows in ``leave``."""
        by_pid = self.snapshot.by_pid
        live = [p for p in session.panes if not p.dead and p.pid in by_pid and p.window_id not in leave]
        return tuple(ProcessTarget(p.pid, by_pid[p.pid].start_ticks) for p in live)

    @property
    def _windows(self) -> dict[int, tuple[str, str]]:
        """pid -> (server, window id) of the live pane it runs in, as the snapshot kept it from its collect."""
        return self.snapshot.windows

    def sessions_showing(self, pid: int) -> tuple[tuple[str, str], ...]:
        """(server, session) of every session that shows the live pane ``pid`` runs in; empty outside panes."""
        if (where := self._windows.get(pid)) is None:
            return ()
        return self._showing.get(where, ())

    @cached_property
    def _showing(self) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
        """sessions_showing's answers, one a window (made once: every process in a pane asks). Where every window is
        shown by one session (an agent's own, the common case), each answer's one (server, session) is made in C."""
        shown = self._shown_by
        if set(map(len, shown.values())) <= {1}:
            pairs = zip(map(_FIRST, shown), map(_FIRST, shown.values()), strict=True)  # (its server, its session)
            return dict(zip(shown, zip(pairs), strict=True))
        return {key: tuple(zip(repeat(key[0]), names)) for key, names in shown.items()}

    def showing_any(self, pids: Iterable[int]) -> set[tuple[str, str]]:
        """(server, session) of every session that shows a live pane one of ``pids`` runs in: each window once."""
        windows = set(map(self._windows.get, pids))
        return {where for window in windows if window is not None for where in self._showing.get(window, ())}

    @cached_property
    def pane_of(self) -> dict[int, tuple[str, str]]:
        """pid -> (server, session) for every process that descends from a live pane of a checked server
        (the first session listed as showing it)."""
        showing = self._showing  # (each window's answer holds one (server, session) or more: never empty)
        first = dict(zip(showing, map(_FIRST, showing.values()), strict=True))  # one a window, not a process, in C
        places = list(map(first.get, self._windows.values()))  # in C: thousands of processes in panes
        # all(): a place is None or a (server, session) pair, truthy at once (`None in` compared each pair with None)
        if not all(places):  # a window no session shows (never so far): its processes are in no session's pane
            return {pid: where for pid, where in zip(self._windows, places, strict=True) if where is not None}
        return dict(zip(self._windows, cast("list[tuple[str, str]]", places), strict=True))

    @cached_property
    def server_names(self) -> dict[int, str]:
        """Every tmux server seen, checked or not, by its process id: how a process below one names it."""
        return {s.server_pid: s.label for s in (*self.snapshot.servers, *self.snapshot.other_servers) if s.server_pid}

    @cached_property
    def own_sessions(self) -> set[tuple[str, str]]:
        """(server, session) of the panes this suite runs in (an agent checking its own fleet): never judged."""
        return self.showing_any(self.snapshot.self_pids)

    @cached_property
    def checked_labels(self) -> set[str]:
        """The checked servers' labels."""
        return {s.label for s in self.snapshot.servers}

    def working(self, session: LiveSession, panes: tuple[Pane, ...] | None = None) -> Proc | None:
        """The first process in the session's live panes (or in ``panes`` of them) that is not a known idle one
        (healthchecks.idle)."""
        by_pid = self.snapshot.by_pid
        for pane in session.panes if panes is None else panes:
            if pane.dead:
                continue
            for pid in processes.descendants(self.a.children, pane.pid):
                if (proc := by_pid.get(pid)) is not None and idle(proc) is None:
                    return proc
        return None

    def agent_program(self, session: LiveSession, panes: tuple[Pane, ...]) -> Proc | None:
        """The first process in these live panes that runs a recognised agent program (programs.py), or None."""
        by_pid = self.snapshot.by_pid
        for pane in panes:
            if not pane.dead:
                for pid in processes.descendants(self.a.children, pane.pid):
                    if (proc := by_pid.get(pid)) is not None and proc.agent:
                        return proc
        return None

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



_SESSION, _CREATED, _WINDOW = attrgetter("session"), attrgetter("session_created"), attrgetter("window_id")
_LIVE = partial(tuple.__new__, LiveSession)  # a LiveSession of its fields as one tuple, made in C (no __new__ frame)
_LIVE_NAME = itemgetter(1)  # a LiveSession's name
_FIRST = itemgetter(0)  # a (server, window id) key's server; a window's first session
_SERVER = attrgetter("server")  # an agent's (analysis.Agent.server: None, any checked one)


def _labels_unique(servers: tuple[TmuxServer, ...]) -> bool:
    return len({s.label for s in servers}) == len(servers)


def _server_sessions(server: TmuxServer) -> list[LiveSession]:
    """A server's live sessions, in the order their first panes are listed. Where every session has one pane (an
    agent's session, the common case) they are made in C, from the panes' columns: a Python step a pane was most
    of the tmux view's cost at 1,000 sessions."""
    panes = server.panes
    names = list(map(_SESSION, panes))
    if len(set(names)) == len(names):
        return list(map(_LIVE, zip(repeat(server.label), names, map(_CREATED, panes), zip(panes))))
    grouped: dict[str, list[Pane]] = defaultdict(list)
    for pane in panes:
        grouped[pane.session].append(pane)
    return [LiveSession(server.label, name, group[0].session_created, tuple(group)) for name, group in grouped.items()]


def _grouped_sessions(servers: tuple[TmuxServer, ...]) -> dict[str, list[LiveSession]]:
    """Live sessions by name, grouped by (label, name) pane by pane: for servers that share a label."""
    grouped: dict[tuple[str, str], list[Pane]] = defaultdict(list)
    for server in servers:
        for pane in server.panes:
            grouped[(server.label, pane.session)].append(pane)
    result: dict[str, list[LiveSession]] = defaultdict(list)
    for (label, name), panes in grouped.items():
        result[name].append(LiveSession(label, name, panes[0].session_created, tuple(panes)))
    return result


def _server_windows(server: TmuxServer) -> Iterable[tuple[tuple[str, str], tuple[str, ...]]]:
    """(server, window id) -> the sessions showing it, of one server: in C where each window is listed once (one
    pane, one session: the common case)."""
    panes = server.panes
    windows = list(map(_WINDOW, panes))
    if len(set(windows)) == len(windows):
        return zip(zip(repeat(server.label), windows), zip(map(_SESSION, panes)), strict=True)
    return _shown_by_panes([(server.label, p) for p in panes]).items()


def _shown_by_panes(panes: list[tuple[str, Pane]]) -> dict[tuple[str, str], tuple[str, ...]]:
    """(server, window id) -> the sessions showing it, each once, in the order listed, pane by pane."""
    found: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
    for label, pane in panes:
        found[(label, pane.window_id)][pane.session] = None
    return {key: tuple(names) for key, names in found.items()}
