"""The neutral model every source builds: agent records, the scopes that hold them, and their problems.

A source (healthchecks.sources) reads one manager's store into `Records`; the checks judge only this model and
the `Dialect` it carries, never a file format. Scopes: the authority (the store every other scope must agree
with: the orchestrator's global registry, a state database) and its members (task registries), each with
its problems (`Problem`: file, path inside it, what is wrong), its counters and its records.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from functools import cached_property
from itertools import chain, compress
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard, TypeVar

from .dialect import Dialect, ScopeKind, Status, StatusClass

if TYPE_CHECKING:  # a reader's live read of a server (healthchecks.tmux), carried as read
    from .tmux import TmuxServer

# (path, stamp) per file of a store: changes when a record does (safe_files.stamp; None: no regular file there)
Fingerprint = tuple[tuple[str, str | None], ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a store, kept as its parts so nobody splits a line back (a path may hold ": "): the
    file (or a scope's label), where inside it (a JSON path, a table or column; `$`: the file as a whole; empty:
    nowhere in particular) and what is wrong. str() is the one line every output shows."""

    file: str
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"

    @property
    def reason(self) -> str:
        """The line without its file: what a finding on the file says."""
        return f"{self.where}: {self.what}" if self.where else self.what


class RegistryError(ValueError):
    """A record store that cannot be used: its problems, the first one the reason (str(): one line each)."""

    def __init__(self, problem: Problem, *more: Problem) -> None:
        self.problems = (problem, *more)
        super().__init__("\n".join(map(str, self.problems)))

    @property
    def problem(self) -> Problem:
        return self.problems[0]

    def __reduce__(self) -> tuple[type[RegistryError], tuple[Problem, ...]]:
        return type(self), self.problems


class Owner(NamedTuple):
    """The process that owns a scope and writes it (a team's lead): PID + start ticks, as /proc/<pid>/stat has
    them. ``start_ticks`` None: the store does not say, so the owner can never be proven dead."""

    pid: int
    start_ticks: int | None
    here: bool = True  # its pid is of this machine's pid namespace (False: another one's, never judged by pid)


@dataclass(frozen=True, slots=True)
class CursorRecord:
    """An orchestrator record of E3's cursor backend: a process, no tmux session."""

    pid: int


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """A record whose place lives on one tmux server of its own (None: the checked servers)."""

    server: str | None


@dataclass(frozen=True, slots=True)
class PaneRecord(ServerRecord):
    """A record placed by one pane (`%N`, meaningful only on its ``server``) rather than a session, owned by its
    scope's owner (a teammate and its team's lead): when the owner is dead, so is the agent's purpose."""

    pane: str | None
    owner: Owner | None = None


@dataclass(frozen=True, slots=True)
class ConversationRecord(ServerRecord):
    """A record that names its Claude conversation (what `--session-id`/`--resume` name): agent-deck's."""

    conversation: str | None = None


@dataclass(frozen=True, slots=True)
class HomeRecord:
    """A record with a directory of its own (a per-record worktree): a process working inside is its ("": none
    recorded)."""

    home: str


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job of Claude Code's own background service (`claude --bg`): its conversation, the name a person gave it,
    the agent processes its files name as (pid, start ticks) (the roster's replPid/replProcStart and every
    sessions/<pid>.json with its jobId), and its roster entry's respawn attempt and when the roster last changed
    (epoch s; None: no roster entry, no daemon will respawn it)."""

    session_id: str
    name: str
    agents: tuple[tuple[int, int], ...]
    cwd: str = ""  # where it works (a `-w` session: its worktree)
    attempt: int | None = None
    roster_changed: float | None = None


# Every manager's extension of the neutral record (a new manager adds its own here, not fields on every record).
Extension = CursorRecord | ServerRecord | HomeRecord | JobRecord
E = TypeVar("E", bound=Extension)


class AgentRecord(NamedTuple):
    """One agent as one scope describes it (a tuple: 10,000 of them are made for every snapshot)."""

    id: str
    task_id: str | None
    status: Status
    tmux_session: str
    source: ScopeKind
    # started_at, then completed_at, terminated_at, failed_at as written: parsed only when a check
    # asks (grace periods concern a few agents; parsing 10,000 entries' times up front does not pay).
    times: tuple[Any, ...] = ()
    status_class: StatusClass = StatusClass.ACTIVE
    extra: Extension | None = None  # what its manager adds to the neutral record (None: nothing, no cost)
    # What its manager records launching for it, most specific first (Programs.named asks each in turn): a command
    # (claude-squad's `program`, aoe's custom `command`), an agent's name (agent-deck's and aoe's `tool`, Gas Town's
    # GT_AGENT, the orchestrator's `backend`), the agent it is detected as (aoe's `detect_as`); (): not recorded
    program: tuple[str, ...] = ()

    def ext(self, kind: type[E]) -> E | None:
        """Its extension when it is of ``kind`` (a subclass counts), else None: how a check asks for one manager's
        facts without a field on every record."""
        return self.extra if isinstance(self.extra, kind) else None

    def marked(self, status: str) -> AgentRecord:
        """As the record will be once a fix marks it dead with ``status``."""
        return self._replace(status=status, status_class=StatusClass.TERMINAL)

    def started_at(self, tz: tzinfo | None) -> float | None:
        return parse_time(self.times[0], tz) if self.times else None

    def ended_at(self, tz: tzinfo | None) -> float | None:
        return next((t for value in self.times[1:] if (t := parse_time(value, tz)) is not None), None)


def _field(name: str) -> itemgetter[Any]:
    """A record's field read in C by its place in the tuple: judging passes every record of a snapshot through these
    (map, compress, list equality), and an item is read at 2.5x an attribute's pace (no type lookup, no descriptor:
    0.17 against 0.43 ms a pass over 10,000 records)."""
    return itemgetter(AgentRecord._fields.index(name))


RECORD_ID, RECORD_TASK, RECORD_CLASS = map(_field, ("id", "task_id", "status_class"))
RECORD_SESSION, RECORD_TIMES, RECORD_EXTRA = map(_field, ("tmux_session", "times", "extra"))
_AGENTS = attrgetter("agents")  # a scope's records


class Columns:
    """Groups of records end to end (every scope's, the authority's first) and a field of all of them, each read once
    on first use: several checks ask the same field of every record of a snapshot (the classes: the agreement, the
    active agents, the known statuses, the figures), and each pass over 20,000 records was one more walk of them."""

    def __init__(self, groups: Sequence[Sequence[AgentRecord]]) -> None:
        self.records = list(chain.from_iterable(groups))

    @cached_property
    def classes(self) -> list[StatusClass]:
        return list(map(RECORD_CLASS, self.records))


def extensions(records: Sequence[AgentRecord], kind: type[E]) -> Iterator[tuple[AgentRecord, E]]:
    """Each record with its extension of ``kind``; the records that carry none are passed over in C (most do)."""
    for record in compress(records, map(RECORD_EXTRA, records)):
        if isinstance(extra := record.extra, kind):
            yield record, extra


class Worktree(NamedTuple):
    """A git worktree a manager made for one session and locked with its agent's identity (Claude Code's `-w NAME`:
    `<repo>/.claude/worktrees/NAME`, locked `claude session NAME (pid P start T)`), as its repository records it."""

    repo: str
    path: str
    name: str
    pid: int  # 0 (and start_ticks 0): not locked, so nothing says which agent made it
    start_ticks: int
    branch: str  # the branch its HEAD is on ("" when detached)


@dataclass(frozen=True)
class Service:
    """What a manager's own service process leaves for the checks (Claude Code's background daemon): the daemon as
    its lock names it (None: no lock), every sessions/<pid>.json as (file, pid, start ticks, kind, job id), and the
    worktrees its sessions locked."""

    daemon: Owner | None = None
    sessions: tuple[tuple[str, int, int, str, str], ...] = ()
    worktrees: tuple[Worktree, ...] = ()


class Tracked(NamedTuple):
    """A process a manager recorded in a file of its own (Gas Town's `.runtime/pids/<session>.pid`): its pid, and
    when it started (epoch seconds, to the second) or None when the file holds a bare pid, which proves nothing."""

    file: str
    pid: int
    started: float | None
    session: str

    def started_as(self, when: float) -> bool:
        """Whether a process started at ``when`` (epoch seconds) is the one recorded: the same second, give or take
        one (both come from the boot time, which may move by one); never for a bare pid."""
        return self.started is not None and abs(when - self.started) < 2


@dataclass(frozen=True)
class Scope:
    """One store of records as read (a registry file, a database): its problems, or its counters and records."""

    path: Path
    kind: ScopeKind
    digest: str | None = None
    mtime: float | None = None
    errors: tuple[Problem, ...] = ()
    counters: dict[str, Any] = field(default_factory=dict)
    agents: tuple[AgentRecord, ...] = ()
    task_ids: tuple[str, ...] = ()
    client_dirs: tuple[str, ...] = ()  # the project directories its agents' Claude runs in (`client_cwd`)
    keys: frozenset[str] = frozenset()  # its top-level fields: what tells one era's files from another's
    owner: Owner | None = None  # the process that owns and writes it (None: the manager's, whoever runs it)
    name: str = ""  # how its manager names it (a team's name); empty: its label
    # other directories that go with it when it is archived (a team's tasks/<team>), whatever stands there: the
    # writer moves one only if it is a folder reached through no symlink (else it is not the scope's)
    belongings: tuple[Path, ...] = ()
    stamp: str | None = None  # the bytes read, as safe_files.stamp names them (what the fingerprint compares)
    tracked: tuple[Tracked, ...] = ()  # processes its manager recorded in pid files (checks.stale_pid_files)
    # parts of the store its reader did not read, and why: (what, why), said as information by the check that needs it
    unread: tuple[tuple[str, str], ...] = ()
    service: Service | None = None  # its manager's service process and what it leaves (Claude Code's daemon)

    @property
    def label(self) -> str:
        """How a person names it: its manager's name for it, else relative to the workspace's layout."""
        return self.name or f"{self.path.parent.name}/{self.path.name}"


@dataclass(frozen=True)
class Records:
    """The agents' records of one workspace, whatever holds them, and the dialect they are written in.

    ``authority``: the scope every member must agree with (and whose entries are "the registry's agents");
    ``members``: scopes that repeat part of it (the orchestrator's task registries).
    """

    workspace: Path
    authority: Scope
    members: tuple[Scope, ...]
    dialect: Dialect
    source: str  # its line in healthchecks.sources.SOURCES
    errors: tuple[Problem, ...] = ()  # workspace-level problems
    fingerprint: Fingerprint = ()  # the store's fingerprint when it was read
    # tmux servers its reader read live, while the records were held (a store whose records are a server's own
    # sessions): the snapshot's live state of each, never read again (snapshot.read_servers)
    servers: tuple[TmuxServer, ...] = ()

    @cached_property
    def scopes(self) -> tuple[Scope, ...]:
        """Made once (judging asks for it some 20 times, for a thousand task registries)."""
        return (self.authority, *self.members)

    @cached_property
    def all_errors(self) -> tuple[Problem, ...]:
        """Made once: every check asks (`ok`) whether it may judge, walking every scope a time took 3 ms a judging
        of 1,000 task registries."""
        return self.errors + tuple(e for f in self.scopes for e in f.errors)

    @property
    def ok(self) -> bool:
        return not self.all_errors

    @cached_property
    def columns(self) -> Columns:
        """Every scope's records as columns (Columns), made once for every check that reads a field of them all."""
        return Columns(tuple(map(_AGENTS, self.scopes)))


def is_path(value: Any) -> TypeGuard[str]:
    """Whether a recorded directory can be a path at all: a non-empty string without NUL (no system call takes one)."""
    return isinstance(value, str) and bool(value) and "\0" not in value


def may_be_after(value: Any, naive_limit: str) -> bool:
    """Whether an orchestrator timestamp may lie after a naive ISO limit (YYYY-MM-DDTHH:MM:SS), without parsing it.

    Naive times as Python writes them (19 or 26 characters) sort as strings, so the answer is exact for them;
    anything else (an offset, another precision) may be later and is left to parse_time.
    """
    if not isinstance(value, str):
        return False
    if len(value) in (19, 26) and value[19:20] in ("", "."):
        return value > naive_limit
    return True


def parse_time(value: Any, tz: tzinfo | None = None) -> float | None:
    """Orchestrator timestamps are naive ISO strings in its own local zone (``tz``; None: this machine's).

    None when absent or unreadable. A timestamp that carries an offset keeps it.
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None and tz is not None:
            moment = moment.replace(tzinfo=tz)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):  # unparseable, or a date the platform clock cannot hold
        return None


def epoch_ms(value: Any) -> str | None:
    """A time as Claude Code writes it in its files (epoch milliseconds: a team's joinedAt, a job's updatedAt) as an
    ISO time with its offset, which the checks' grace reads; None for anything else or out of range."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return None
