"""Process attribution: which agent programs' processes (Claude Code and every other program of programs.py) run in
a pane, and what ties each one outside every pane to this workspace (its evidence, each sign typed by its kind), so
that it is attached, an orphan or foreign. A wrapper/child pair (programs.Pair) is one agent: the wrapper is judged,
its child carried with it; a child whose wrapper is gone is the agent itself. A program's leftovers (Codex's
daemons whose Codex is gone, a Gemini whose terminal is gone) are judged by the same evidence and said so."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property, partial
from itertools import compress
from operator import attrgetter
from typing import TYPE_CHECKING, NamedTuple

from .. import processes
from ..dialect import Evidence as Sign
from ..processes import Proc, started_at
from ..programs import CLAUDE, AgentProgram, Orphaned, left_by
from ..records import ConversationRecord, HomeRecord, Tracked, extensions
from ..sightings import SessionSighting, Sighting
from ..sources import DIALECTS
from ..sources.orchestrator.dialect import ORCHESTRATOR_ID_TOKEN
from ..tmux import stored_name

if TYPE_CHECKING:  # the analysis that composes this view (its context and the other views)
    from ..tmux import Pane
    from . import Analysis
    from .sessions import LiveSession

_PROGRAM, _IS_CLAUDE, _EXE = attrgetter("program"), attrgetter("is_claude"), attrgetter("exe")
_TOKEN = re.compile(r"[\w-]+")  # a run no whole-token match can start or end inside
_TMUX_VALUE = re.compile(r".*,([0-9]{1,18}),([0-9]{1,18})", re.S)  # TMUX: <socket>,<server pid>,<session number>


def _moment(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


def _duration(seconds: float) -> str:
    """A span as a person reads it: 42s, 7m05s, 3h02m, 12d04h."""
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


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


class Clue(NamedTuple):
    """One sign seen on a process: its kind (the dialect's kinds of evidence) as data, and what was seen, as a person
    reads it."""

    sign: Sign
    detail: str


@dataclass(frozen=True)
class Evidence:
    """What ties a Claude process outside every pane to this workspace, and to an orchestrator's launch.

    Only both together are exclusive enough to act on: a person's `claude -p` may name an agent or
    run in the project directory, and another workspace's agent has the same launch shape. ``seen`` is
    what points this way without being exclusive (the client directory as cwd): listed, never acted on.
    """

    workspace: tuple[Clue, ...] = ()
    launch: tuple[Clue, ...] = ()
    seen: tuple[Clue, ...] = ()

    @property
    def exclusive(self) -> bool:
        return bool(self.workspace and self.launch)

    def __bool__(self) -> bool:
        return bool(self.workspace or self.launch or self.seen)

    def __or__(self, other: Evidence) -> Evidence:
        return Evidence(self.workspace + other.workspace, self.launch + other.launch, self.seen + other.seen)

    @classmethod
    def both(cls, sign: Sign, detail: str) -> Evidence:
        """A sign that is exclusive on its own: it names this workspace and an orchestrator's launch at once."""
        clue = Clue(sign, detail)
        return cls((clue,), (clue,))

    @classmethod
    def tie(cls, sign: Sign, detail: str) -> Evidence:
        """A sign that names this workspace, not the launch."""
        return cls((Clue(sign, detail),))

    @classmethod
    def only_seen(cls, sign: Sign, detail: str) -> Evidence:
        """A sign that points this way without being exclusive: listed, never acted on."""
        return cls(seen=(Clue(sign, detail),))

    @property
    def signs(self) -> frozenset[Sign]:
        """The kinds of sign seen (what made a process an orphan, or kept it information)."""
        return frozenset(c.sign for c in self.workspace + self.launch + self.seen)

    def describe(self) -> str:
        return "; ".join(dict.fromkeys(c.detail for c in self.workspace + self.launch + self.seen))


class Classified(NamedTuple):
    """An agent program's process (a pair's wrapper) and why it is in its class (attached, orphan or foreign): the
    reason shown, the evidence used when there was any (its kinds of sign as data), and the pair's child that goes
    with it. (A tuple: one is made for every agent process of every snapshot.)"""

    proc: Proc
    reason: str
    evidence: Evidence | None = None
    carried: tuple[Proc, ...] = ()


_CLASSIFIED = partial(tuple.__new__, Classified)  # a Classified of its fields as one tuple, in C (no __new__ frame)


class Attribution:
    """The attribution view: Claude processes, and what ties each one outside every pane to this workspace (its
    evidence), sorting them into attached, orphan and foreign."""

    def __init__(self, a: Analysis) -> None:
        self.a = a
        self.snapshot = a.snapshot

    @cached_property
    def claude(self) -> list[Proc]:
        """Claude processes that can be judged: not defunct (a defunct one only waits for its parent). Picked from the
        agent programs' judgeable processes (a process runs CLAUDE exactly when it is_claude: processes.Proc), in C,
        not from every process of the machine again."""
        agents = self.agents
        return list(compress(agents, map(_IS_CLAUDE, agents)))

    @cached_property
    def agents(self) -> list[Proc]:
        """Every agent program's processes that can be judged (Claude's among them), not defunct: the few of
        thousands picked out in C (one walk a snapshot; Proc.agent asked of each took a tenth of judging)."""
        return [p for p in compress(self.snapshot.processes, map(_PROGRAM, self.snapshot.processes)) if not p.defunct]

    @cached_property
    def _left_by(self) -> dict[str, AgentProgram]:
        """Each scanned binary some program leaves behind (programs.left_by) -> that program: asked once a binary (a
        machine runs a few dozen), not once a process."""
        return {exe: program for exe in set(map(_EXE, self.snapshot.processes)) if (program := left_by(exe))}

    @cached_property
    def accountable(self) -> list[Proc]:
        """Every running agent program's process and every program's leftover, in scan order, this suite's own left
        out: what the accounted-for check judges (and every output counts), made once."""
        own = self.snapshot.self_pids
        if not self.leftovers:  # the common case: the agents' processes alone, already in scan order
            return [p for p in self.agents if p.pid not in own]
        left = {p.pid for p in self.leftovers}
        return [p for p in self.snapshot.processes if (p.pid in self._agent_pids or p.pid in left) and p.pid not in own]

    def wrapper_of(self, proc: Proc) -> Proc | None:
        """The wrapper whose child this process is (its parent, a live process of the same paired program, and the
        child's binary the pair's when it names one); None for a wrapper, a lone process, a child left alone."""
        program = proc.program
        if program is None or program.pair is None:  # most: no pair's program (a dict lookup saved each)
            return None
        parent = self.snapshot.by_pid.get(proc.ppid)
        if parent is None or parent.program is not program:
            return None
        child_exe = program.pair.child_exe
        return parent if not parent.defunct and (child_exe is None or child_exe.search(proc.exe)) else None

    def carried(self, wrapper: Proc) -> tuple[Proc, ...]:
        """The pair's children of a wrapper: ended with it, never judged apart."""
        if wrapper.program is None or wrapper.program.pair is None:  # no pair's program: no child of its pair
            return ()
        found = (self.snapshot.by_pid.get(pid) for pid in self.a.children.get(wrapper.pid, ()))
        return tuple(p for p in found if p is not None and self.wrapper_of(p) is wrapper)

    @cached_property
    def leftovers(self) -> list[Proc]:
        """Processes a program leaves when its agent is gone, by its table entry: a binary of their own whose parent
        is no process of that program any more (Codex's daemons, re-parented to pid 1)."""
        found: list[Proc] = []
        if not self._left_by:  # the common case: no binary of the machine is any program's leftover
            return found
        for proc in self.snapshot.processes:
            program = self._left_by.get(proc.exe)
            if program is None or proc.defunct or proc.pid in self.a.tmux.pane_of:
                continue
            parent = self.snapshot.by_pid.get(proc.ppid)
            if parent is None or parent.program is not program:
                found.append(proc)
        return found

    def leftover_of(self, proc: Proc) -> str | None:
        """What the process is as a program's leftover (as a person reads it), or None when it is none."""
        if (program := self._left_by.get(proc.exe)) is not None and program.leftover is not None:
            return f"{program.name}'s {program.leftover.what}"
        program = proc.program
        if program is None or program.leftover is None or program.leftover.orphaned is not Orphaned.TERMINAL_GONE:
            return None
        return f"a {program.name} {program.leftover.what} whose terminal is gone" if proc.terminal_gone else None

    def leftover_note(self, proc: Proc) -> str:
        """What a leftover is, how old and how much CPU it took, for its line ('' for any other process)."""
        if (left := self.leftover_of(proc)) is None:
            return ""
        age = max(0.0, self.a.now - started_at(proc, self.snapshot.boot_time))
        cpu = "CPU time unknown" if proc.cpu is None else f"{_duration(proc.cpu)} of CPU"
        return f"a leftover: {left}, {_duration(age)} old, {cpu}; "

    @cached_property
    def sessions_with_claude(self) -> set[tuple[str, str]]:
        """(server, session) pairs whose panes run at least one Claude process: every session showing the pane."""
        return self.a.tmux.showing_any(self._claude_pids)

    def claude_in(self, session: LiveSession, panes: tuple[Pane, ...]) -> bool:
        """Whether a Claude process runs below these panes of the session (all of them: one set lookup)."""
        if panes is session.panes:
            return (session.server, session.name) in self.sessions_with_claude
        claude = self._claude_pids
        return any(pid in claude for p in panes if not p.dead for pid in processes.descendants(self.a.children, p.pid))

    @cached_property
    def _claude_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.claude)

    @cached_property
    def _agent_pids(self) -> frozenset[int]:
        return frozenset(p.pid for p in self.agents)

    @cached_property
    def _id_index(self) -> tuple[frozenset[str], re.Pattern[str] | None]:
        """Agent ids as whole tokens: `a` must not match inside `data`, nor an id inside a longer one. Ids made of
        word characters and dashes (all real ones) are a set looked up per token: a regex of 200,000 alternatives
        takes seconds to compile. Any other id goes into a small regex of its own."""
        shape = self.snapshot.registries.dialect.id_shape
        ids = [i for i in self.a.records.index if shape.fullmatch(i)]
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
    def signs(self) -> frozenset[Sign]:
        return self.snapshot.registries.dialect.evidence

    @cached_property
    def _path_pattern(self) -> re.Pattern[str]:
        return re.compile(re.escape(self.a.workspace) + r"(?=/|$|\s|')")

    @cached_property
    def _own_roots(self) -> frozenset[str]:
        """This workspace's path: real, and as given (a symlink's name for it)."""
        return frozenset({self.a.workspace, os.path.abspath(self.a.settings.workspace)})

    @cached_property
    def _own_written(self) -> re.Pattern[str]:
        """This workspace's own path, in every form a command line writes it, as a whole path: matched exactly before
        any pattern, since a folder name may hold a space or a quote, where the generic pattern stops."""
        forms = sorted({f for root in self._own_roots for f in written_forms(root)}, key=len, reverse=True)
        return re.compile(_PATH_START + "(?:" + "|".join(map(re.escape, forms)) + ")" + _PATH_END)

    def _ties(self, proc: Proc) -> tuple[Clue, ...]:
        """What in a process's own argv, cwd and open files names this workspace. In another mount namespace
        a path is another directory's name: only the working directory's identity counts there."""
        found = []
        kinds = self.signs  # the kinds of evidence this manager's dialect admits
        joined = " ".join(proc.argv)
        if Sign.RECORD_ID_IN_ARGS in kinds and (named := self._named_id(joined)):
            found.append(Clue(Sign.RECORD_ID_IN_ARGS, f"its arguments name agent {named}"))
        if Sign.PATH_IN_ARGS in kinds and proc.own_mounts and self._path_pattern.search(joined):
            found.append(Clue(Sign.PATH_IN_ARGS, "its arguments name a path inside the workspace"))
        if Sign.CWD_IN_WORKSPACE in kinds and proc.cwd and self._cwd_inside(proc):
            found.append(Clue(Sign.CWD_IN_WORKSPACE, f"its working directory {proc.cwd} is inside the workspace"))
        held = [f for f in proc.files if f.fd != 0 and self.a.inside_workspace(os.path.realpath(f.path))]
        if Sign.HOLDS_WORKSPACE_FILE in kinds and held and proc.own_mounts:
            found.append(Clue(Sign.HOLDS_WORKSPACE_FILE, f"it holds {held[0].path} open"))
        return tuple(found)

    def _cwd_inside(self, proc: Proc) -> bool:
        """The working directory is the workspace or below it: by identity (dev, inode) when it was read."""
        if proc.cwd_ids:
            return (ws := self.snapshot.dir_ids.get(self.a.workspace)) is not None and ws in proc.cwd_ids
        return proc.own_mounts and self.a.inside_workspace(os.path.realpath(proc.cwd or ""))

    def _cwd_is_client_dir(self, proc: Proc) -> bool:
        if proc.cwd_ids:
            return proc.cwd_ids[0] in {self.snapshot.dir_ids.get(d) for d in self.a.records.client_dirs}
        return proc.own_mounts and os.path.realpath(proc.cwd or "") in self.a.records.client_dirs

    @cached_property
    def _homes(self) -> dict[str, str]:
        """A record's own directory (real path) -> its id: a process working inside one is that record's. Only an
        absolute one: a relative one would name a directory by this run's working directory (sources refuse it)."""
        return {os.path.realpath(e.home): r.id for f in self.snapshot.registries.scopes
                for r, e in extensions(f.agents, HomeRecord) if e.home and os.path.isabs(e.home)}

    @cached_property
    def _conversations(self) -> dict[str, str]:
        return {e.conversation: r.id for f in self.snapshot.registries.scopes
                for r, e in extensions(f.agents, ConversationRecord) if e.conversation}

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
        kinds, dialect = self.signs, self.snapshot.registries.dialect
        if Sign.ENV_ROOT_AND_ID in kinds and dialect.root_env and (root := proc.getenv(dialect.root_env)) is not None:
            return self._root_sign(proc, root)
        found = Evidence()
        resumed = self._resumed(proc) if Sign.CONVERSATION_IN_ARGS in kinds else None
        if Sign.ENV_RECORD_ID in kinds and dialect.id_env and (value := proc.getenv(dialect.id_env)) is not None:
            if value not in self.a.records.index:
                return None
            found = self._env_sign(proc, value, resumed)
        if Sign.CWD_IN_RECORD_DIR in kinds and proc.cwd and (rid := self._home_of(os.path.realpath(proc.cwd))):
            found = found | Evidence.both(Sign.CWD_IN_RECORD_DIR,
                                          f"its working directory {proc.cwd} is inside record {rid}'s own directory")
        if Sign.CWD_IN_REMOVED_WORKTREE in kinds and (removed := self._removed_worktree(proc)):
            found = found | Evidence.both(Sign.CWD_IN_REMOVED_WORKTREE, removed)
        if resumed is not None:  # a tie, never enough alone: a person may resume the same conversation
            found = found | Evidence.tie(Sign.CONVERSATION_IN_ARGS,
                                        f"its arguments resume record {resumed[0]}'s conversation {resumed[1]}")
        return found

    def _removed_worktree(self, proc: Proc) -> str | None:
        """The sign claude-squad's Kill leaves on an agent that survives it (it removes the record, kills the
        session, removes the worktree): a recognised agent program whose working directory the kernel says was
        removed, a per-record worktree of this store as its manager names them (`worktrees/<branch>_<hex>`, gone
        now), and whose terminal is gone too. The removed worktree alone is not exclusive: a person who cd'd into
        an instance's worktree from their own terminal (to review it) and runs a program there is left with the
        same removed directory, but keeps their terminal; the agent lost its terminal with the session."""
        pattern = self.snapshot.registries.dialect.removed_worktrees
        if pattern is None or not (proc.agent and proc.cwd and proc.cwd_deleted and proc.own_mounts):
            return None
        relative = os.path.relpath(proc.cwd, self.a.workspace)
        worktree = "/".join(relative.split("/")[:2])
        if not pattern.fullmatch(worktree) or os.path.lexists(os.path.join(self.a.workspace, worktree)):
            return None
        if not proc.terminal_gone:
            return None
        return (f"its working directory {proc.cwd} is a worktree of this store that was removed, and its terminal is "
                "gone (its session was killed)")

    def _root_sign(self, proc: Proc, root: str) -> Evidence | None:
        """The root and id variables its manager's launch set: another place's root vetoes (None); this store's with
        a session live on no checked server is exclusive (both); with a live one, information (an inherited pair)."""
        dialect = self.snapshot.registries.dialect
        if os.path.realpath(root) not in self._own_roots:
            return None
        session = proc.getenv(dialect.id_env) if dialect.id_env else None
        if not session:
            return Evidence.only_seen(Sign.ENV_ROOT_AND_ID, f"its {dialect.root_env} names this store, but no session")
        sign = f"its environment names this store ({dialect.root_env}) and session {session!r:.80} ({dialect.id_env})"
        if (stored := stored_name(session)) is None or stored in self.a.tmux.sessions:  # (None: not matched for sure)
            return Evidence.only_seen(Sign.ENV_ROOT_AND_ID, f"{sign}, which still lives: an inherited pair")
        gone = f"{sign}, gone from its tmux server"
        if (proof := self._launched_in(proc, session)) is None:  # the pair alone: anyone can set it, all inherit it
            why = f"{gone}; no pid file or lineage proves it was launched there"
            return Evidence.only_seen(Sign.ENV_ROOT_AND_ID, why)
        return Evidence((Clue(Sign.ENV_ROOT_AND_ID, gone),), (proof,))

    # --- A gone session's root/id pair needs a second sign the agents cannot forge with the pair alone --------------
    @cached_property
    def _tracked(self) -> dict[str, Tracked]:
        """The manager's pid files that carry a start time (Scope.tracked, as its reader read them), by session."""
        return {t.session: t for scope in self.snapshot.registries.scopes for t in scope.tracked
                if t.pid > 0 and t.started is not None}

    def _launched_in(self, proc: Proc, session: str) -> Clue | None:
        """What proves a process carrying a gone session's pair was launched there: that session's pid file naming
        it, or a live ancestor of it, by pid and start time (Gas Town tracks the pane's process, which its launch
        execs into the agent: pidtrack.go, `exec env ...`); or an earlier run's sighting of this very process in
        that session's pane (healthchecks.sightings). None: nothing but the pair."""
        if (tracked := self._tracked.get(session)) is not None:
            for up in self._ancestry(proc):
                if up.pid == tracked.pid and tracked.started_as(processes.started_at(up, self.snapshot.boot_time)):
                    whom = "it" if up is proc else f"its ancestor {up.pid} ({up.name})"
                    return Clue(Sign.ENV_ROOT_AND_ID, f"pid file {os.path.basename(tracked.file)} names {whom}, "
                                                      f"started {_moment(tracked.started or 0)}")
        seen = self.snapshot.sightings.processes.get((proc.pid, proc.start_ticks))
        if seen is not None and seen.agent == session:
            return Clue(Sign.LINEAGE, f"seen in agent {session}'s pane at {_moment(seen.time)}")
        return None

    def _ancestry(self, proc: Proc, depth: int = 64) -> list[Proc]:
        """The process and its ancestors as scanned, nearest first (bounded: a pid table is no tree for sure)."""
        return [proc, *itertools.takewhile(lambda up: up.pid > 1, self.snapshot.ancestors(proc, depth - 1))]

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
        if program := self._runs_agent(rid):
            why = f"{sign}, whose {program} still runs in its session: an inherited variable"
            return Evidence.only_seen(Sign.ENV_RECORD_ID, why)
        if not proc.headless and (resumed is None or resumed[0] != rid):
            why = f"{sign}, but it is interactive and resumes none of that record's conversation"
            return Evidence.only_seen(Sign.ENV_RECORD_ID, why)
        return Evidence.both(Sign.ENV_RECORD_ID, sign)

    def _own_evidence(self, proc: Proc) -> Evidence:
        launch: tuple[Clue, ...] = ()
        dialect = self.snapshot.registries.dialect
        if Sign.ID_AFTER_FLAG in self.signs and (carried := dialect.carried_id(proc.argv)) in self.a.records.index:
            # the manager's own launch put this record's id after its flag: both the tie and the launch
            sign = f"its arguments carry {dialect.id_flag} {carried}, a {dialect.nouns[0]} of these records"
            return Evidence.both(Sign.ID_AFTER_FLAG, sign)
        if Sign.LAUNCH_FLAGS in self.signs and proc.headless and all(flag in proc.argv for flag in dialect.launch):
            launch = (Clue(Sign.LAUNCH_FLAGS,
                           "its arguments are the orchestrator's launch (--print --output-format stream-json ...)"),)
        # The project directory as cwd is where people run `claude -p` with the same flags too: information only.
        seen: tuple[Clue, ...] = ()
        if Sign.CWD_IS_CLIENT_DIR in self.signs and proc.cwd and self._cwd_is_client_dir(proc):
            seen = (Clue(Sign.CWD_IS_CLIENT_DIR,
                         f"its working directory {proc.cwd} is this workspace's client directory"),)
        found = Evidence(self._ties(proc), launch, seen)
        stdin = next((f for f in proc.files if f.fd == 0), None)
        if (Sign.STDIN_FROM_WORKSPACE in self.signs and stdin and proc.own_mounts
                and self.a.inside_workspace(os.path.realpath(stdin.path))):
            # `claude ... < <task>/prompt`: the orchestrator's own redirection, into this workspace
            found = found | Evidence.both(Sign.STDIN_FROM_WORKSPACE,
                                          f"its standard input is {stdin.path}, a file of this workspace")
        if (origin := self.lineage(proc)) is not None:
            agent, sign = origin
            if program := self._runs_agent(agent):  # the agent still works: this may be its own background job
                still = f"{sign}, and that agent still runs {program} in its session"
                found = found | Evidence.only_seen(Sign.LINEAGE, still)
            else:
                found = found | Evidence.both(Sign.LINEAGE, sign)
        return found

    def lineage(self, proc: Proc) -> tuple[str, str] | None:
        """(agent, sign) from what an earlier run saw: this very process in the agent's pane; or, for an agent
        program's process only, the session its TMUX variable names, seen as that agent's on the same live server."""
        if (found := self.sighting(proc)) is not None:
            return found.agent, f"seen in agent {found.agent}'s pane at {_moment(found.time)}"
        if proc.agent and (session := self.session_sighting(proc)) is not None:
            return session.agent, (f"started in agent {session.agent}'s session {session.session} (its TMUX names it), "
                                   f"seen as that agent's at {_moment(session.time)}")
        return None

    def _runs_agent(self, agent_id: str) -> str | None:
        """The agent program (Claude Code or another) the record's session runs in its agent panes, or None."""
        agent = self.a.records.agent(agent_id)
        live = self.a.tmux.sessions.get(agent.session, ()) if agent is not None else ()
        pids = self._agent_pids
        return next((proc.program.name for s in live for p in self.a.tmux.agent_panes(s) if not p.dead
                     for pid in processes.descendants(self.a.children, p.pid)
                     if pid in pids and (proc := self.snapshot.by_pid[pid]).program is not None), None)

    def sighting(self, proc: Proc) -> Sighting | None:
        """An earlier run's sighting of exactly this process (pid and start) in the pane of an agent of this
        workspace (healthchecks.sightings); None for any other process, or an agent these records do not hold."""
        found = self.snapshot.sightings.processes.get((proc.pid, proc.start_ticks))
        return found if found is not None and found.agent in self.a.records.index else None

    def session_sighting(self, proc: Proc) -> SessionSighting | None:
        """The session an earlier run saw as one agent of these records' that this process was started in: its
        TMUX (`<socket>,<server pid>,<session number>`) names that server, still the same live process (pid and
        start), and that session id, which the server never gives another session."""
        if (named := _TMUX_VALUE.fullmatch(proc.getenv("TMUX") or "")) is None:
            return None
        if (server := self.snapshot.by_pid.get(int(named.group(1)))) is None:
            return None
        found = self.snapshot.sightings.sessions.get((server.pid, server.start_ticks, f"${int(named.group(2))}"))
        return found if found is not None and found.agent in self.a.records.index else None

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
        if Sign.PIPELINE_WRITES_WORKSPACE not in self.signs:
            return found
        launched = set(processes.descendants(self.a.children, proc.pid))  # itself and what it started
        for member in self.groups.get(proc.pgid, []):
            if member.pid in launched or member.agent or not member.own_mounts:
                continue
            if self._path_pattern.search(" ".join(member.argv)):  # its arguments only: a cwd proves nothing
                sign = f"process {member.pid} ({member.name}) of its pipeline names a path inside the workspace"
                found = found | Evidence.both(Sign.PIPELINE_WRITES_WORKSPACE, sign)
                break
        return found

    def elsewhere(self, session: LiveSession) -> tuple[str, ...]:
        """What in the session's processes belongs to another workspace: a path inside another workspace (its log,
        prompt file, task folder), or an agent id that is not this session's agent. Such a session is that
        workspace's whatever this registry says (a copied workspace, a reused id, a hostile entry)."""
        mine = {agent.id for agent in self.a.tmux.agents_in(session)}
        found: dict[str, None] = {}
        for pane in session.panes:
            if pane.dead:
                continue
            for pid in processes.descendants(self.a.children, pane.pid):
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
        """Processes of no agent program that an earlier run saw in an agent's pane and that now run outside every
        pane (a Bash tool's own-session child left by a killed Claude, say): listed with their lineage, never ended
        (a line of the memory could name any process; only a recognised agent program is ended by it)."""
        seen = self.snapshot.sightings.processes
        if not seen:  # nothing remembered (a first run, a manager without panes): no process to look at
            return []
        leftovers = {p.pid for p in self.leftovers}
        return [p for p in self.snapshot.processes if (p.pid, p.start_ticks) in seen and not p.agent and not p.defunct
                and p.pid not in leftovers and p.pid not in self.a.tmux.pane_of and self.sighting(p) is not None]

    @cached_property
    def claude_classes(self) -> dict[str, list[Classified]]:
        """Every agent program's processes (Claude Code's and the others'; a pair as its wrapper, carrying its
        child), the programs' leftovers, and processes remembered in an agent's pane, sorted into attached / orphan
        / foreign, each with the reason (and evidence) used. (Named when only Claude was judged: readers keep it.)"""
        classes: dict[str, list[Classified]] = {k: [] for k in ("attached", "orphan", "foreign")}
        wrapper_of, classify, carried = self.wrapper_of, self._classify, self.carried  # (looked up once, not a process)
        for proc in [*self.agents, *self.leftovers, *self.remembered]:
            if wrapper_of(proc) is None and (placed := classify(proc)) is not None:
                kind, reason, found = placed
                classes[kind].append(_CLASSIFIED((proc, reason, found, carried(proc))))
        return classes

    def _classify(self, proc: Proc) -> tuple[str, str, Evidence | None] | None:
        """(class, reason, evidence) of one process; None for the suite's own tree (never judged, never signalled) and
        for another program's process that nothing ties here (not listed)."""
        if why := self.managed.get(proc.pid):  # a manager's own service (issue 29): asked first
            return "foreign", why, None
        if where := self.a.tmux.pane_of.get(proc.pid):
            return "attached", f"runs in session {where[1]} on tmux server {where[0]}", None
        if proc.pid in self.snapshot.self_pids:
            return None  # the Claude this suite runs under: never an orphan, never signalled
        if (server := self.snapshot.in_tmux.get(proc.pid)) is not None and not self._killed_pane(proc, server):
            name = self.a.tmux.server_names.get(server, f"pid {server}")
            checked = name in self.a.tmux.checked_labels
            if not checked and self._unlisted(proc):
                return None
            place = "in a dead pane's place or a tmux job" if checked else "in a pane"
            return "foreign", f"runs {place} of tmux server {name}, which is not checked here; left alone", None
        note = self.leftover_note(proc)
        if (found := self.evidence(proc)) is None:
            return "foreign", note + self._vetoed(), None
        if found.exclusive and (proc.agent or note):
            return "orphan", f"{note}this workspace's agent{self._which(proc)}: {found.describe()}", found
        if found.exclusive:  # remembered only: lineage alone never ends a sleep, a shell, an editor, a server
            reason = f"{found.describe()}; not a recognised agent program, which lineage alone never ends; left alone"
            return "foreign", reason, found
        if note and not found:  # nobody's as far as this workspace knows: the accounted-for check names it
            return None
        if not found and self._unlisted(proc):
            return None
        return "foreign", note + self._foreign_reason(proc, found), found

    @staticmethod
    def _unlisted(proc: Proc) -> bool:
        """A program other than Claude with nothing pointing here (a person's Gemini in their terminal or on another
        tmux server) is not listed, as no other process of theirs is; Claude's are, as they always were."""
        return proc.agent and not proc.is_claude

    def _killed_pane(self, proc: Proc, server: int) -> bool:
        """An agent program's process (or leftover) below a checked tmux server in none of its panes whose terminal
        is gone: its pane was killed and it survived, still the server's child (a pane's command runs as it);
        judged like any process outside every pane. A tmux job (run-shell) never had a terminal."""
        checked = {s.server_pid for s in self.snapshot.servers}
        return server in checked and proc.terminal_gone and (proc.agent or proc.exe in self._left_by)

    def _which(self, proc: Proc) -> str:
        """Which program an orphan runs, and the pair's child ended with it ('' for a lone Claude, as always)."""
        program = proc.program
        if program is None or program is CLAUDE:
            return ""
        children = ", ".join(str(c.pid) for c in self.carried(proc))
        return f" ({program.name}" + (f", with its child pid {children})" if children else ")")

    # --- Claude Code's own background service (issue 29): the one rule every source's run asks first -------------
    @cached_property
    def managed(self) -> dict[int, str]:
        """pid -> why, for each process a manager's own files prove its own (snapshot.managed: pid + start ticks
        equal to the scanned process's), and every process below one (a daemon's warm spare, an agent's tools):
        information naming that manager, never an orphan of the manager this run checks."""
        found: dict[int, str] = {}
        for pid, (ticks, why) in self.snapshot.managed.items():
            if self.snapshot.running(pid, ticks) is not None:
                for below in processes.descendants(self.a.children, pid):
                    found.setdefault(below, f"started by {why}; Claude Code manages it, left alone")
                found[pid] = f"{why}: Claude Code manages it, left alone"
        return found
    # --- end of Claude Code's background service -----------------------------------------------------------------

    def _vetoed(self) -> str:
        """Why a process whose manager's variables name another store is left alone."""
        dialect = self.snapshot.registries.dialect
        if dialect.root_env:
            return f"its {dialect.root_env} names another place than this store (another one's); left alone"
        return f"its {dialect.id_env} names no record of this store (another profile's or store's); left alone"

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

    def lost_home(self, session: LiveSession) -> str | None:
        """Where a session no record names works inside the store, for a manager whose records each have a
        directory there (a lost record's worktree); None otherwise."""
        if Sign.CWD_IN_RECORD_DIR not in self.signs:
            return None
        return next((p.path for p in session.panes if p.path and self.a.inside_workspace(os.path.realpath(p.path))),
                    None)

