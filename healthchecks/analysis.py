"""Relate a snapshot's parts to each other once, so every check judges from the same facts.

Pure: a snapshot in, plain values out. Nothing here reads the machine.
"""

from __future__ import annotations

import operator
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from functools import cached_property, partial
from itertools import chain, compress
from typing import cast

from . import processes
from .dialect import Evidence as Sign
from .dialect import StatusClass
from .idle import idle
from .processes import Proc
from .records import RECORD_CLASS, RECORD_ID, RECORD_SESSION, AgentRecord, Owner, Scope
from .sightings import SessionSighting, Sighting
from .snapshot import Snapshot, pane_of
from .sources import DIALECTS
from .sources.orchestrator.dialect import ORCHESTRATOR_ID_TOKEN
from .targets import PaneTarget, ProcessTarget, ServerTarget
from .tmux import Pane, State, TmuxServer, stored_name, stored_names

_TOKEN = re.compile(r"[\w-]+")  # a run no whole-token match can start or end inside
_TMUX_VALUE = re.compile(r".*,([0-9]{1,18}),([0-9]{1,18})", re.S)  # TMUX: <socket>,<server pid>,<session number>


def _moment(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


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

    __slots__ = ("_ended", "_started", "active", "certain", "cursor_pid", "id", "owner", "pane", "records", "server",
                 "session", "status_class", "terminal")

    def __init__(self, id: str, records: list[AgentRecord]) -> None:
        self.id = id
        self.records = records
        self._started: float | bool | None = False  # False: not parsed yet (timestamps are parsed on demand)
        self._ended: float | bool | None = False
        head = records[0]
        stored = stored_name(head.tmux_session)  # as tmux stores it (`.` and `:` become `_`, ...)
        # False: its session, when not found live under that name, may live under another one. Only an ASCII name's
        # stored form is what tmux stored whatever its locale (a non-ASCII name found live so is matched all the same)
        self.certain = stored is not None and head.tmux_session.isascii()
        self.session = head.tmux_session if stored is None else stored
        self.cursor_pid = head.cursor_pid or next((r.cursor_pid for r in records if r.cursor_pid), None)  # E3's cursor
        self.server = head.server  # the one server its session (or its pane) may live on (None: any checked one)
        self.pane, self.owner = head.pane, head.owner  # a teammate's: its pane id, its team's lead
        first = self.status_class = head.status_class
        if len(records) > 1 and len(classes := set(map(RECORD_CLASS, records))) > 1:  # records that disagree: rare
            self.active, self.terminal = StatusClass.ACTIVE in classes, classes == {StatusClass.TERMINAL}
        else:
            self.active, self.terminal = first is StatusClass.ACTIVE, first is StatusClass.TERMINAL

    def started_at(self, tz: tzinfo | None) -> float | None:
        if self._started is False:  # one zone per analysis: the first answer is the answer
            self._started = max((t for r in self.records if (t := r.started_at(tz)) is not None), default=None)
        return self._started

    def ended_at(self, tz: tzinfo | None) -> float | None:
        if self._ended is False:
            self._ended = max((t for r in self.records if (t := r.ended_at(tz)) is not None), default=None)
        return self._ended


class RecordIndex(Mapping[str, list[AgentRecord]]):
    """Every agent id's records, global first, in registry order, as two dicts built in C: the authority's records
    by id and every member's by id. A record list is made only when one is asked for (most checks ask for a few
    hundred of 10,000 ids), and judging makes no container per id. Where ids repeat within the authority or
    across members (no store read so far writes that), every id's list is made at once, in one pass."""

    def __init__(self, authority: tuple[AgentRecord, ...], members: tuple[Scope, ...]) -> None:
        member_records = list(chain.from_iterable(m.agents for m in members))
        self._authority = dict(zip(map(RECORD_ID, authority), authority, strict=True))
        self._members = dict(zip(map(RECORD_ID, member_records), member_records, strict=True))
        self._lists: dict[str, list[AgentRecord]] | None = None
        if len(self._authority) != len(authority) or len(self._members) != len(member_records):
            lists: defaultdict[str, list[AgentRecord]] = defaultdict(list)
            for record in chain(authority, member_records):
                lists[record.id].append(record)
            self._lists = dict(lists)
        self._ids = self._lists.keys() if self._lists is not None else dict.fromkeys(chain(self._authority,
                                                                                          self._members)).keys()

    def __getitem__(self, agent_id: str) -> list[AgentRecord]:
        if self._lists is not None:
            return self._lists[agent_id]
        found = [r for r in (self._authority.get(agent_id), self._members.get(agent_id)) if r is not None]
        if not found:
            raise KeyError(agent_id)
        return found

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def firsts(self) -> list[AgentRecord]:
        """Each id's first record, in the index's order (in C when every id has a global record)."""
        if self._lists is not None:
            return [records[0] for records in self._lists.values()]
        found = list(map(self._authority.get, self._ids))
        if None in found:
            found = [self._authority.get(i) or self._members[i] for i in self._ids]
        return cast("list[AgentRecord]", found)  # no None left in it (mypy cannot follow `None in found`)


# A path inside a workspace: its `.agent-workspace` folder, or a task folder (the workspace is its parent).
WORKSPACE_PATH = re.compile(r"(/[^\s'\"]*?)/(\.agent-workspace|TASK-\d{8}-\d{6}-[0-9a-f]{8})(?=[/\s'\"]|$)")
# The same in a path known whole (a directory the kernel reported): its folders may hold spaces and quotes.
WORKSPACE_DIR = re.compile(r"(/.*?)/(\.agent-workspace|TASK-\d{8}-\d{6}-[0-9a-f]{8})(?=/|$)", re.DOTALL)
# Where a path written in a command line ends: a separator, a quote, the end (a folder name may hold anything else).
_PATH_END = r"(?=[/\s'\"]|$)"
# What may stand before a path that is written whole (not the tail of a longer one).
_PATH_START = r"(?<![^\s'\"=<>])"


def written_forms(path: str) -> set[str]:
    """How a shell command line (a pane's `sh -c <command>`) may write a path: as it is (the orchestrator writes
    '<path>' unescaped), each `'` closed and reopened as shlex.quote writes it ('"'"') or as people do ('\\''),
    or escaped for double quotes. Every argv after a shell holds the first."""
    double = re.sub(r'([\\"$`])', r"\\\1", path)
    return {path, path.replace("'", "'\"'\"'"), path.replace("'", "'\\''"), double}


@dataclass(frozen=True)
class Evidence:
    """What ties a Claude process outside every pane to this workspace, and to an orchestrator's launch.

    Only both together are exclusive enough to act on: a person's `claude -p` may name an agent or
    run in the project directory, and another workspace's agent has the same launch shape. ``seen`` is
    what points this way without being exclusive (the client directory as cwd): listed, never acted on.
    """

    workspace: tuple[str, ...] = ()
    launch: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()

    @property
    def exclusive(self) -> bool:
        return bool(self.workspace and self.launch)

    def __bool__(self) -> bool:
        return bool(self.workspace or self.launch or self.seen)

    def __or__(self, other: Evidence) -> Evidence:
        return Evidence(self.workspace + other.workspace, self.launch + other.launch, self.seen + other.seen)

    @classmethod
    def both(cls, sign: str) -> Evidence:
        """A sign that is exclusive on its own: it names this workspace and an orchestrator's launch at once."""
        return cls((sign,), (sign,))

    def describe(self) -> str:
        return "; ".join(dict.fromkeys(self.workspace + self.launch + self.seen))


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
    def records(self) -> RecordIndex:
        """Every agent id's records, global first, in registry order."""
        return RecordIndex(self.snapshot.registries.authority.agents, self.snapshot.registries.members)

    def agent(self, agent_id: str) -> Agent | None:
        """One agent, made on first use: most checks look at a few hundred of 10,000."""
        if (made := self._made.get(agent_id)) is None and (recs := self.records.get(agent_id)):
            made = self._made[agent_id] = Agent(agent_id, recs)
        return made

    def known(self, agent_id: str) -> Agent:
        """The agent of an id taken from the records themselves (as agent(), never None)."""
        if (made := self.agent(agent_id)) is None:
            raise KeyError(agent_id)
        return made

    @cached_property
    def agents(self) -> dict[str, Agent]:
        """Every agent (for the few places that look at all of them: --prune, unknown statuses)."""
        return {aid: self.known(aid) for aid in self.records}

    @cached_property
    def active_agents(self) -> list[Agent]:
        active = partial(operator.is_, StatusClass.ACTIVE)
        ids: set[str] = set()
        for f in self.snapshot.registries.scopes:  # in C: 10,000 records a snapshot
            ids.update(compress(map(RECORD_ID, f.agents), map(active, map(RECORD_CLASS, f.agents))))
        return [self.known(aid) for aid in filter(ids.__contains__, self.records)]

    @cached_property
    def agents_by_session(self) -> dict[str, list[Agent]]:
        """Agents by the name of their session, for the sessions live on any server seen (the only ones asked)."""
        live = self.sessions.keys() | self.other_sessions.keys()
        ids = list(self.records)
        stored = stored_names(list(map(RECORD_SESSION, self.records.firsts())))
        result: dict[str, list[Agent]] = defaultdict(list)
        # an uncertain name (None) is never live
        live_pairs = compress(zip(ids, stored, strict=True), map(live.__contains__, stored))
        pairs = cast("Iterator[tuple[str, str]]", live_pairs)  # (compress keeps only live names, never None)
        for aid, name in pairs:
            result[name].append(self.known(aid))
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
        for (label, name), panes in grouped.items():
            result[name].append(LiveSession(label, name, panes[0].session_created, tuple(panes)))
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
        names = self._server_aliases
        return next((s for s in self.sessions.get(agent.session, ())
                     if agent.server is None or agent.server in names.get(s.server, (s.server,))), None)

    @cached_property
    def _server_aliases(self) -> dict[str, tuple[str, ...]]:
        """Every name a checked server was reached by (a socket name and its path are one server)."""
        return {s.label: (s.label, *s.aliases) for s in self.snapshot.servers}

    @cached_property
    def session_prefix(self) -> str:
        """What this fleet's sessions are called: as asked, else as the records' manager names them."""
        return self.settings.session_prefix or self.snapshot.registries.dialect.session_prefix

    def lost_home(self, session: LiveSession) -> str | None:
        """Where a session no record names works inside the store, for a manager whose records each have a
        directory there (a lost record's worktree); None otherwise."""
        if Sign.CWD_IN_RECORD_DIR not in self._signs:
            return None
        return next((p.path for p in session.panes if p.path and self._inside_workspace(os.path.realpath(p.path))),
                    None)

    @cached_property
    def agent_sessions(self) -> list[LiveSession]:
        """The live sessions named like this fleet's; none for a manager that names no sessions (its agents live in
        panes): another manager's sessions on the same server are not its untracked ones."""
        prefix = self.session_prefix
        if not prefix:
            return []
        helpers = self.snapshot.registries.dialect.helper_prefixes  # its paired shells: never agents
        return [s for name, group in self.sessions.items() if name.startswith(prefix)
                and not (helpers and name.startswith(helpers) and name not in self.agents_by_session) for s in group]

    def agent_panes(self, session: LiveSession) -> tuple[Pane, ...]:
        """The panes holding the session's agent: every pane, or the dialect's agent pane of its first window (tmux
        lists windows in index order); none when that pane is gone."""
        index = self.snapshot.registries.dialect.agent_pane
        if index is None:
            return session.panes
        first = session.panes[0].window_id
        return tuple(p for p in session.panes if p.window_id == first and p.index == index)[:1]

    def claude_in(self, session: LiveSession, panes: tuple[Pane, ...]) -> bool:
        """Whether a Claude process runs below these panes of the session (all of them: one set lookup)."""
        if panes is session.panes:
            return (session.server, session.name) in self.sessions_with_claude
        claude = self._claude_pids
        return any(pid in claude for p in panes if not p.dead for pid in processes.descendants(self.children, p.pid))

    @cached_property
    def _claude_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.claude)

    @cached_property
    def stopped_servers(self) -> list[TmuxServer]:
        """Checked servers with no server running: right socket? right user? Every agent looks dead."""
        return [s for s in self.snapshot.servers if s.state is State.NO_SERVER]

    @cached_property
    def _shown_by(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(server, window id) -> every session of a checked server that shows the window: its own session,
        the other sessions of its group, sessions that link it. tmux lists the window's panes under each."""
        found: dict[tuple[str, str], dict[str, None]] = defaultdict(dict)
        for server in self.snapshot.servers:
            for pane in server.panes:
                found[(server.label, pane.window_id)][pane.session] = None
        return {key: tuple(names) for key, names in found.items()}

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

    # -- process side --------------------------------------------------------------------------
    @cached_property
    def children(self) -> dict[int, list[int]]:
        return processes.children_of(self.snapshot.processes)

    @cached_property
    def _windows(self) -> dict[int, tuple[str, str]]:
        """pid -> (server, window id) of the live pane it runs in."""
        return pane_of(self.children, self.snapshot.servers)

    def sessions_showing(self, pid: int) -> tuple[tuple[str, str], ...]:
        """(server, session) of every session that shows the live pane ``pid`` runs in; empty outside panes."""
        if (where := self._windows.get(pid)) is None:
            return ()
        return self._showing.get(where, ())

    @cached_property
    def _showing(self) -> dict[tuple[str, str], tuple[tuple[str, str], ...]]:
        """sessions_showing's answers, one a window (made once: every process in a pane asks)."""
        return {key: tuple((key[0], name) for name in names) for key, names in self._shown_by.items()}

    @cached_property
    def pane_of(self) -> dict[int, tuple[str, str]]:
        """pid -> (server, session) for every process that descends from a live pane of a checked server
        (the first session listed as showing it)."""
        return {pid: found[0] for pid in self._windows if (found := self.sessions_showing(pid))}

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
        return {where for pid in self.snapshot.self_pids for where in self.sessions_showing(pid)}

    @cached_property
    def _id_index(self) -> tuple[frozenset[str], re.Pattern[str] | None]:
        """Agent ids as whole tokens: `a` must not match inside `data`, nor an id inside a longer one. Ids made of
        word characters and dashes (all real ones) are a set looked up per token: a regex of 200,000 alternatives
        takes seconds to compile. Any other id goes into a small regex of its own."""
        shape = self.snapshot.registries.dialect.id_shape
        ids = [i for i in self.records if shape.fullmatch(i)]
        plain = frozenset(i for i in ids if _TOKEN.fullmatch(i))
        odd = sorted((i for i in ids if i not in plain), key=len, reverse=True)
        return plain, re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, odd)) + r")(?![\w-])") if odd else None

    def _named_id(self, text: str) -> str | None:
        """The first agent id ``text`` names as a whole token, or None."""
        plain, odd = self._id_index
        found = [next(((m.start(), m.group()) for m in _TOKEN.finditer(text) if m.group() in plain), None)]
        if odd is not None and (m := odd.search(text)):
            found.append((m.start(), m.group(1)))
        return min((f for f in found if f is not None), default=(0, None))[1]

    @cached_property
    def _signs(self) -> frozenset[Sign]:
        return self.snapshot.registries.dialect.evidence

    @cached_property
    def _path_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.workspace) + r"(?=/|$|\s|')")

    @cached_property
    def _own_roots(self) -> frozenset[str]:
        """This workspace's path: real, and as given (a symlink's name for it)."""
        return frozenset({self.workspace, os.path.abspath(self.settings.workspace)})

    @cached_property
    def _own_written(self) -> re.Pattern[str]:
        """This workspace's own path, in every form a command line writes it, as a whole path: matched exactly before
        any pattern, since a folder name may hold a space or a quote, where the generic pattern stops."""
        forms = sorted({f for root in self._own_roots for f in written_forms(root)}, key=len, reverse=True)
        return re.compile(_PATH_START + "(?:" + "|".join(map(re.escape, forms)) + ")" + _PATH_END)

    def _inside_workspace(self, path: str) -> bool:
        return path == self.workspace or path.startswith(self.workspace + "/")

    def _ties(self, proc: Proc) -> tuple[str, ...]:
        """What in a process's own argv, cwd and open files names this workspace. In another mount namespace
        a path is another directory's name: only the working directory's identity counts there."""
        found = []
        kinds = self._signs  # the kinds of evidence this manager's dialect admits
        joined = " ".join(proc.argv)
        if Sign.RECORD_ID_IN_ARGS in kinds and (named := self._named_id(joined)):
            found.append(f"its arguments name agent {named}")
        if Sign.PATH_IN_ARGS in kinds and proc.own_mounts and self._path_pattern.search(joined):
            found.append("its arguments name a path inside the workspace")
        if Sign.CWD_IN_WORKSPACE in kinds and proc.cwd and self._cwd_inside(proc):
            found.append(f"its working directory {proc.cwd} is inside the workspace")
        held = [f for f in proc.files if f.fd != 0 and self._inside_workspace(os.path.realpath(f.path))]
        if Sign.HOLDS_WORKSPACE_FILE in kinds and held and proc.own_mounts:
            found.append(f"it holds {held[0].path} open")
        return tuple(found)

    def _cwd_inside(self, proc: Proc) -> bool:
        """The working directory is the workspace or below it: by identity (dev, inode) when it was read."""
        if proc.cwd_ids:
            return (ws := self.snapshot.dir_ids.get(self.workspace)) is not None and ws in proc.cwd_ids
        return proc.own_mounts and self._inside_workspace(os.path.realpath(proc.cwd or ""))

    def _cwd_is_client_dir(self, proc: Proc) -> bool:
        if proc.cwd_ids:
            return proc.cwd_ids[0] in {self.snapshot.dir_ids.get(d) for d in self.client_dirs}
        return proc.own_mounts and os.path.realpath(proc.cwd or "") in self.client_dirs

    @cached_property
    def _homes(self) -> dict[str, str]:
        """A record's own directory (real path) -> its id: a process working inside one is that record's. Only an
        absolute one: a relative one would name a directory by this run's working directory (sources refuse it)."""
        return {os.path.realpath(r.home): r.id for f in self.snapshot.registries.scopes for r in f.agents
                if r.home and os.path.isabs(r.home)}

    @cached_property
    def _conversations(self) -> dict[str, str]:
        return {r.conversation: r.id for f in self.snapshot.registries.scopes for r in f.agents if r.conversation}

    def _home_of(self, cwd: str) -> str | None:
        """The record whose directory holds ``cwd`` (walking up: as many lookups as the path is deep)."""
        path = cwd
        while path not in ("/", ""):
            if (found := self._homes.get(path)) is not None:
                return found
            path = os.path.dirname(path)
        return None

    def _record_signs(self, proc: Proc) -> Evidence | None:
        """Signs naming one record exactly (its directory; the id variable as its manager's launch leaves it) count as
        both tie and launch; None when the id variable names a record this store does not hold (another store's
        agent: never ours)."""
        kinds, dialect = self._signs, self.snapshot.registries.dialect
        found = Evidence()
        resumed = self._resumed(proc) if Sign.CONVERSATION_IN_ARGS in kinds else None
        if Sign.ENV_RECORD_ID in kinds and dialect.id_env and (value := proc.getenv(dialect.id_env)) is not None:
            if value not in self.records:
                return None
            found = self._env_sign(proc, value, resumed)
        if Sign.CWD_IN_RECORD_DIR in kinds and proc.cwd and (rid := self._home_of(os.path.realpath(proc.cwd))):
            found = found | Evidence.both(f"its working directory {proc.cwd} is inside record {rid}'s own directory")
        if resumed is not None:  # a tie, never enough alone: a person may resume the same conversation
            found = found | Evidence((f"its arguments resume record {resumed[0]}'s conversation {resumed[1]}",))
        return found

    def _resumed(self, proc: Proc) -> tuple[str, str] | None:
        """(record id, conversation) when its --session-id/--resume names a record's Claude conversation."""
        for flag, value in zip(proc.argv, proc.argv[1:], strict=False):
            if flag in ("--session-id", "--resume", "-r") and (rid := self._conversations.get(value)):
                return rid, value
        return None

    def _env_sign(self, proc: Proc, rid: str, resumed: tuple[str, str] | None) -> Evidence:
        """The id variable naming record ``rid``: exclusive only as its manager's launch of an agent that no longer
        runs leaves it (#729). While the record's Claude still runs in its session, another process carrying its
        id inherited it (a shell opened from its pane: information, as for lineage); and an interactive Claude
        needs the record's own conversation in its arguments too (`claude --session-id|--resume <it>`, the launch)."""
        sign = f"its environment names record {rid} ({self.snapshot.registries.dialect.id_env})"
        if self._runs_claude(rid):
            return Evidence(seen=(f"{sign}, whose Claude still runs in its session: an inherited variable",))
        if not proc.headless and (resumed is None or resumed[0] != rid):
            return Evidence(seen=(f"{sign}, but it is interactive and resumes none of that record's conversation",))
        return Evidence.both(sign)

    def _own_evidence(self, proc: Proc) -> Evidence:
        launch: tuple[str, ...] = ()
        dialect = self.snapshot.registries.dialect
        if Sign.ID_AFTER_FLAG in self._signs and (carried := dialect.carried_id(proc.argv)) in self.records:
            # the manager's own launch put this record's id after its flag: both the tie and the launch
            sign = f"its arguments carry {dialect.id_flag} {carried}, a {dialect.nouns[0]} of these records"
            return Evidence((sign,), (sign,))
        if Sign.LAUNCH_FLAGS in self._signs and proc.headless and all(flag in proc.argv for flag in dialect.launch):
            launch = ("its arguments are the orchestrator's launch (--print --output-format stream-json ...)",)
        # The project directory as cwd is where people run `claude -p` with the same flags too: information only.
        seen: tuple[str, ...] = ()
        if Sign.CWD_IS_CLIENT_DIR in self._signs and proc.cwd and self._cwd_is_client_dir(proc):
            seen = (f"its working directory {proc.cwd} is this workspace's client directory",)
        found = Evidence(self._ties(proc), launch, seen)
        stdin = next((f for f in proc.files if f.fd == 0), None)
        if (Sign.STDIN_FROM_WORKSPACE in self._signs and stdin and proc.own_mounts
                and self._inside_workspace(os.path.realpath(stdin.path))):
            # `claude ... < <task>/prompt`: the orchestrator's own redirection, into this workspace
            found = found | Evidence.both(f"its standard input is {stdin.path}, a file of this workspace")
        if (origin := self.lineage(proc)) is not None:
            agent, sign = origin
            if self._runs_claude(agent):  # the agent still works: this may be its own background job
                found = found | Evidence(seen=(f"{sign}, and that agent still runs Claude in its session",))
            else:
                found = found | Evidence.both(sign)
        return found

    def lineage(self, proc: Proc) -> tuple[str, str] | None:
        """(agent, sign) from what an earlier run saw: this very process in the agent's pane; or, for a Claude
        process only, the session its TMUX variable names, seen as that agent's on the same live server."""
        if (found := self.sighting(proc)) is not None:
            return found.agent, f"seen in agent {found.agent}'s pane at {_moment(found.time)}"
        if proc.is_claude and (session := self.session_sighting(proc)) is not None:
            return session.agent, (f"started in agent {session.agent}'s session {session.session} (its TMUX names it), "
                                   f"seen as that agent's at {_moment(session.time)}")
        return None

    def _runs_claude(self, agent_id: str) -> bool:
        agent = self.agent(agent_id)
        live = self.sessions.get(agent.session, ()) if agent is not None else ()
        return any(self.claude_in(s, self.agent_panes(s)) for s in live)

    def sighting(self, proc: Proc) -> Sighting | None:
        """An earlier run's sighting of exactly this process (pid and start) in the pane of an agent of this
        workspace (healthchecks.sightings); None for any other process, or an agent these records do not hold."""
        found = self.snapshot.sightings.processes.get((proc.pid, proc.start_ticks))
        return found if found is not None and found.agent in self.records else None

    def session_sighting(self, proc: Proc) -> SessionSighting | None:
        """The session an earlier run saw as one agent of these records' that this process was started in: its
        TMUX (`<socket>,<server pid>,<session number>`) names that server, still the same live process (pid and
        start), and that session id, which the server never gives another session."""
        if (named := _TMUX_VALUE.fullmatch(proc.getenv("TMUX") or "")) is None:
            return None
        if (server := self.snapshot.by_pid.get(int(named.group(1)))) is None:
            return None
        found = self.snapshot.sightings.sessions.get((server.pid, server.start_ticks, f"${int(named.group(2))}"))
        return found if found is not None and found.agent in self.records else None

    @cached_property
    def groups(self) -> dict[int, list[Proc]]:
        result: dict[int, list[Proc]] = defaultdict(list)
        for proc in self.snapshot.processes:
            if proc.pid not in self.snapshot.self_pids:
                result[proc.pgid].append(proc)
        return result

    def evidence(self, proc: Proc) -> Evidence | None:
        """Every sign that a Claude process outside every pane is a leaked agent of this workspace.

        Process-group signs come only from the pipeline it was launched in (the `tee` writing this
        workspace's log beside it: the orchestrator's pipeline into this workspace, so they count as
        both), never from what it launched itself: a person's Claude hosting the orchestrator's MCP
        server has that server, naming the workspace, in its group.
        """
        exact = self._record_signs(proc)
        if exact is None:
            return None
        found = self._own_evidence(proc) | exact
        if Sign.PIPELINE_WRITES_WORKSPACE not in self._signs:
            return found
        launched = set(processes.descendants(self.children, proc.pid))  # itself and what it started
        for member in self.groups.get(proc.pgid, []):
            if member.pid in launched or member.is_claude or not member.own_mounts:
                continue
            if self._path_pattern.search(" ".join(member.argv)):  # its arguments only: a cwd proves nothing
                sign = f"process {member.pid} ({member.name}) of its pipeline names a path inside the workspace"
                found = found | Evidence.both(sign)
                break
        return found

    def elsewhere(self, session: LiveSession) -> tuple[str, ...]:
        """What in the session's processes belongs to another workspace: a path inside another workspace (its log,
        prompt file, task folder), or an agent id that is not this session's agent. Such a session is that
        workspace's whatever this registry says (a copied workspace, a reused id, a hostile entry)."""
        mine = {agent.id for agent in self.agents_by_session.get(session.name, [])}
        found: dict[str, None] = {}
        for pane in session.panes:
            if pane.dead:
                continue
            for pid in processes.descendants(self.children, pane.pid):
                if (proc := self.snapshot.by_pid.get(pid)) is None:
                    continue
                line = " ".join(proc.argv)
                cwd = self.snapshot.pane_cwds.get(pid)  # the pane's own, from `new-session -c`
                for root in self._other_roots(line, cwd):
                    found[f"process {pid} ({proc.name}) names workspace {root}"] = None
                line += f" {cwd}/" if cwd is not None else ""
                ids = {m.group(1) for m in ORCHESTRATOR_ID_TOKEN.finditer(line)}
                if ids and not any(token.endswith(agent) for token in ids for agent in mine):  # `agent_prompt_<id>`
                    found[f"process {pid} ({proc.name}) names agent {sorted(ids)[0]}, not this session's"] = None
        return tuple(found)

    def _other_roots(self, line: str, cwd: str | None) -> dict[str, None]:
        """The workspaces other than this one that a command line and a directory name. This workspace's own path is
        taken out of the line exactly first (a folder may hold a space or a quote, where the pattern stops)."""
        found = list(WORKSPACE_PATH.finditer(self._own_written.sub(" ", line)))
        if cwd is not None and (whole := WORKSPACE_DIR.match(cwd + "/")):
            found.append(whole)
        ours = self._own_roots
        roots = (os.path.normpath(m.group(0) if m.group(2) == ".agent-workspace" else m.group(1)) for m in found)
        return {r: None for r in roots
                if not any(r == w or r.startswith(w + "/") or w.startswith(r + "/") for w in ours)}

    @cached_property
    def remembered(self) -> list[Proc]:
        """Processes other than Claude that an earlier run saw in an agent's pane and that now run outside every
        pane (a Bash tool's own-session child left by a killed Claude, say): listed with their lineage, never ended
        (a line of the memory could name any process; only a recognised agent program is ended by it)."""
        return [p for p in self.snapshot.processes if not p.is_claude and not p.defunct
                and p.pid not in self.pane_of and self.sighting(p) is not None]

    @cached_property
    def claude_classes(self) -> dict[str, list[Classified]]:
        """Claude processes (and processes remembered in an agent's pane) sorted into attached / orphan / foreign,
        each with the reason (and evidence) used."""
        classes: dict[str, list[Classified]] = {k: [] for k in ("attached", "orphan", "foreign")}
        for proc in [*self.claude, *self.remembered]:
            if where := self.pane_of.get(proc.pid):
                classes["attached"].append(Classified(proc, f"runs in session {where[1]} on tmux server {where[0]}"))
            elif proc.pid in self.snapshot.self_pids:
                continue  # the Claude this suite runs under: never an orphan, never signalled
            elif (server := self.snapshot.in_tmux.get(proc.pid)) is not None:
                name = self._server_names.get(server, f"pid {server}")
                place = "in a dead pane's place or a tmux job" if name in self._checked_labels else "in a pane"
                reason = f"runs {place} of tmux server {name}, which is not checked here; left alone"
                classes["foreign"].append(Classified(proc, reason))
            elif (found := self.evidence(proc)) is None:
                id_env = self.snapshot.registries.dialect.id_env
                reason = f"its {id_env} names no record of this store (another profile's or store's); left alone"
                classes["foreign"].append(Classified(proc, reason))
            elif found.exclusive and proc.is_claude:
                classes["orphan"].append(Classified(proc, f"this workspace's agent: {found.describe()}"))
            elif found.exclusive:  # remembered only: lineage alone never ends a sleep, a shell, an editor, a server
                reason = (f"{found.describe()}; not a recognised agent program, which lineage alone never ends; "
                          "left alone")
                classes["foreign"].append(Classified(proc, reason))
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

    def working(self, session: LiveSession, panes: tuple[Pane, ...] | None = None) -> Proc | None:
        """The first process in the session's live panes (or in ``panes`` of them) that is not a known idle one
        (healthchecks.idle)."""
        by_pid = self.snapshot.by_pid
        for pane in session.panes if panes is None else panes:
            if pane.dead:
                continue
            for pid in processes.descendants(self.children, pane.pid):
                if (proc := by_pid.get(pid)) is not None and idle(proc) is None:
                    return proc
        return None

    @cached_property
    def sessions_with_claude(self) -> set[tuple[str, str]]:
        """(server, session) pairs whose panes run at least one Claude process: every session showing the pane."""
        return {where for p in self.claude for where in self.sessions_showing(p.pid)}

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
