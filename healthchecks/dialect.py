"""A manager's conventions as data: one Dialect per manager and era, chosen from what its files show. This module is
the model only; each manager's dialects are data in its own package (healthchecks/sources/<manager>/dialect.py).

The same words mean different things to different managers and eras: a missing status is "just deployed" in
a global entry of the orchestrator's later eras but "not recorded here" in its first era (the task registry is
the only record of an agent's state there); its first era's `completed_count` counts `completed` agents only,
later ones every finished agent. A check asks the dialect of the records it judges, never an era by name.

What a dialect says, field by field (a new manager fills in each one):
- ``statuses``: status value -> StatusClass (what it means to a check); a value not listed is UNKNOWN.
- ``status_in``: the scope kinds whose records carry an agent's status; a record of another kind takes the
  class its agent has where the status lives.
- ``counters``: per scope kind, each stored counter and what it counts (Count); none when it keeps no counters.
- ``finished``: the statuses a FINISHED counter counts.
- ``launch``: flags every launch of this manager's Claude carries (a sign of its launch on a process).
- ``id_shape``: what its record ids look like; only ids of this shape are evidence in a process's arguments.
- ``evidence``: the kinds of evidence that attribute a process outside every pane to one of its records.
- ``mark``: how it marks a dead agent in its own records (None: records are never written by a fix).
- ``manager``: the manager's name, for a person (what a process recognised as its launch is said to be).
- ``id_flag``: the flag its launch puts right before a record id (None: no id in its argv).
- ``private_server``: tmux socket names it creates for one owner process (group 1: that owner's pid).
- ``nouns``: what a record and a scope are called in its own terms (every output names them so).
- ``members_repeat_authority``: whether member scopes repeat the authority's records (task registries do; teams
  listed under a config dir are stores of their own).
- ``session_prefix``: how its tmux sessions' names begin (a prefixed session no record names is information);
  empty for a manager that names no sessions (Agent Teams: its members live in panes); several when its store
  says (Gas Town: `hq-` and each rig's beads prefix, its reader's dialect made per town).
- ``helper_prefixes``: names of its sessions that are never agents (paired shells, tool sessions) though they begin
  with ``session_prefix``: such a session no record names is neither judged nor listed as untracked.
- ``agent_pane``: the index of the pane holding the agent in its session's first window (None: every pane is the
  agent's); whether the agent runs is judged there, and nothing in a session with other panes at work is ended.
- ``id_env``: the environment variable its launches set to the record's id (None: it sets none); read only for
  Claude processes outside every pane, and a value naming no record of this store vetoes every other sign. It is
  inherited by whatever a shell in the record's pane starts: exclusive only when the record runs no Claude in its
  session any more, and for an interactive Claude only beside that record's own conversation in its arguments.
- ``root_env``: the variable its launches set to the store's own place, beside ``id_env`` naming the record's
  session (Gas Town's GT_ROOT and GT_SESSION, set at launch): a pair exclusive to this store. A Claude outside
  every pane carrying both, the first naming this workspace, is an orphan once that session is live on no checked
  server; while it lives, information; naming another place, never this store's.
- ``crew_status``: its status for a record that is a person's session (Gas Town's crew): never a zombie, since a
  person's session may run nothing (the reader gives it; the class is PAUSED: a live session is normal).
- ``tracked_cleanup``: the manager's own command that removes its stale pid files (the fix never writes them).
- ``ended``: for a terminal status, what it says its manager did, in its own terms (the leaked-session finding says
  it); a status not listed reads "finished".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import accumulate, chain, repeat
from operator import attrgetter
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from .records import AgentRecord

# A status as a manager writes it: a string, an integer (claude-squad), or none at all (just deployed).
Status = str | int | None


class StatusClass(str, Enum):
    """What a record's status means to the checks."""

    ACTIVE = "active"  # should be running: a missing session is a ghost
    STOPPED = "stopped"  # stopped on purpose; a live session is information, never a leak
    PAUSED = "paused"  # paused, and a live session is normal
    TERMINAL = "terminal"  # finished: a live session is leaked
    UNKNOWN = "unknown"  # a value nobody knows: left to a person

    def __str__(self) -> str:
        return self.value


_UNKNOWN = StatusClass.UNKNOWN
# A record's fields, read in C (map); by name: records.py, which reads them by place, imports this module
_CLASS_OF, _STATUS_OF = attrgetter("status_class"), attrgetter("status")


def _per_scope(agents: Sequence[Sequence[AgentRecord]], column: list[Any], value: object) -> list[int]:
    """How many of each scope's records have ``value`` in ``column`` (one value a record, the scopes' records in
    order; an enum member or a bool, compared by identity first), in C: a slice of the column and list.count a
    scope (a Counter over compressed scope numbers cost a dict update a hit)."""
    ends = list(accumulate(map(len, agents), initial=0))
    return list(map(list.count, map(column.__getitem__, map(slice, ends, ends[1:])), repeat(value)))


class ScopeKind(str, Enum):
    """Which of a manager's stores a record comes from."""

    GLOBAL = "global"  # the orchestrator's GLOBAL_REGISTRY.json: the authority the task registries agree with
    TASK = "task"  # one TASK-*/AGENT_REGISTRY.json
    STATE = "state"  # a database that is the one record (the current release's state.sqlite3)
    TEAM = "team"  # one team's config.json (Claude Code Agent Teams): its own authority, owned by its lead

    def __str__(self) -> str:
        return self.value


class Count(str, Enum):
    """What a stored counter counts among a scope's records."""

    ENTRIES = "entries"
    ACTIVE = "active"
    FINISHED = "finished"  # statuses in Dialect.finished
    TASKS = "tasks"


class Evidence(str, Enum):
    """Kinds of evidence tying a process outside every pane to a manager's records (healthchecks.analysis)."""

    RECORD_ID_IN_ARGS = "a record id of this store in its arguments"
    PATH_IN_ARGS = "a path inside the workspace in its arguments"
    CWD_IN_WORKSPACE = "its working directory inside the workspace"
    CWD_IS_CLIENT_DIR = "its working directory is a recorded client directory (information only: people work there too)"
    HOLDS_WORKSPACE_FILE = "a workspace file held open"
    STDIN_FROM_WORKSPACE = "a workspace file as its standard input (also a sign of the launch)"
    PIPELINE_WRITES_WORKSPACE = "a process of its pipeline names the workspace (also a sign of the launch)"
    LAUNCH_FLAGS = "the manager's launch flags"
    ID_AFTER_FLAG = "a record id right after the manager's id flag in its arguments (e.g. --agent-id X@T)"
    # Signs exclusive to one record (each counts as both a tie and the launch): what pane-less managers leave.
    CWD_IN_RECORD_DIR = "its working directory inside a directory of one record (a per-record worktree)"
    # (an agent program outside every pane whose terminal is gone too: the manager removed record, session, worktree)
    CWD_IN_REMOVED_WORKTREE = "its working directory a per-record worktree its manager removed, its terminal gone"
    # (only for a record whose session runs no Claude; an interactive Claude must resume its conversation too)
    ENV_RECORD_ID = "the dialect's id variable in its environment naming a record of this store"
    # (its root variable naming this workspace, its id variable a session gone from the checked servers)
    ENV_ROOT_AND_ID = "the dialect's root and id variables, set at launch, naming this store and a session of it"
    # A tie, never enough alone: a person may resume the same conversation.
    CONVERSATION_IN_ARGS = "--session-id/--resume naming a record's Claude conversation"
    # Every manager's, never a dialect's choice: an earlier run's own sighting (healthchecks.sightings).
    LINEAGE = "seen in a record's pane by an earlier run (or started in its session)"


@dataclass(frozen=True)
class Mark:
    """How a manager marks a dead agent: the status, the fields set to now, and fixed fields."""

    status: str
    now_fields: tuple[str, ...]
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Dialect:
    name: str
    era: str  # which releases (and commits) write records this way
    statuses: Mapping[Status, StatusClass]
    status_in: frozenset[ScopeKind]
    counters: Mapping[ScopeKind, Mapping[str, Count]]
    finished: frozenset[str]
    launch: tuple[str, ...]
    id_shape: re.Pattern[str]
    evidence: frozenset[Evidence]
    mark: Mark | None
    manager: str
    id_flag: str | None = None
    private_server: re.Pattern[str] | None = None
    nouns: tuple[str, str] = ("agent", "registry")
    members_repeat_authority: bool = True  # member scopes copy the authority's records (else: independent stores)
    session_prefix: str | tuple[str, ...] = ""
    id_env: str | None = None
    helper_prefixes: tuple[str, ...] = ()
    agent_pane: int | None = None
    root_env: str | None = None
    crew_status: str | None = None
    tracked_cleanup: str = ""
    ended: Mapping[Status, str] = field(default_factory=dict)
    # The per-record worktrees it makes inside its store and removes with a record (a path relative to the store)
    removed_worktrees: re.Pattern[str] | None = None

    def launched(self, argv: Sequence[str]) -> str | None:
        """The sign of this manager's launch in a process's arguments, or None (recognition, never proof)."""
        if self.id_flag and self.id_flag in argv[:-1]:
            return f"{self.id_flag} {argv[argv.index(self.id_flag) + 1]}"
        if self.launch and all(flag in argv for flag in self.launch):
            return " ".join(self.launch)
        return None

    def carried_id(self, argv: Sequence[str]) -> str | None:
        """The record id its launch put right after ``id_flag`` (the flag exactly, the next argument whole)."""
        if self.id_flag is None:
            return None
        for i, arg in enumerate(argv[:-1]):
            if arg == self.id_flag:
                return argv[i + 1]
        return None

    def status_class(self, status: object) -> StatusClass:
        """Called for every record read (10,000 a snapshot): one dict lookup."""
        try:
            # any value read is looked up as it is (an unhashable one raises TypeError): no isinstance on the hot path
            return cast("Mapping[object, StatusClass]", self.statuses).get(status, _UNKNOWN)
        except TypeError:  # a list or an object where a status belongs: nothing a manager writes
            return _UNKNOWN

    def known(self) -> tuple[str | int, ...]:
        """Every status value this manager writes (for a writer's guard: an unknown one is left to a person)."""
        return tuple(sorted(s for s in self.statuses if s is not None))

    def expected(self, kind: ScopeKind, agents: Sequence[AgentRecord], tasks: int) -> dict[str, int]:
        """What a scope's counters should be, derived from its records alone, by this manager's meaning: expected_each
        of this one scope (the meaning said once)."""
        return {name: values[0] for name, values in self.expected_each(kind, [agents], [tasks]).items()}

    def expected_each(self, kind: ScopeKind, agents: Sequence[Sequence[AgentRecord]], tasks: Sequence[int],
                      classes: list[StatusClass] | None = None) -> dict[str, list[int]]:
        """expected() of many scopes of one kind at once, with the same meaning (each scope's records, its number of
        tasks): counter name -> each scope's value, counted in C (the check runs for every scope of every snapshot:
        a thousand task registries took 4.7 ms one by one). ``classes``: the records' classes end to end when the
        caller has them (records.Columns: the check's snapshot read them once for every check)."""
        if not (wanted := self.counters.get(kind)):
            return {}
        counts = set(wanted.values())
        value: dict[Count, list[int]] = {Count.ENTRIES: list(map(len, agents)), Count.TASKS: list(tasks)}
        if Count.ACTIVE in counts:
            column = list(map(_CLASS_OF, chain.from_iterable(agents))) if classes is None else classes
            value[Count.ACTIVE] = _per_scope(agents, column, StatusClass.ACTIVE)
        if Count.FINISHED in counts:
            finished = map(self.finished.__contains__, map(_STATUS_OF, chain.from_iterable(agents)))
            value[Count.FINISHED] = _per_scope(agents, list(finished), True)
        return {name: value[count] for name, count in wanted.items()}
