"""The records' side of an analysis: every agent id's records, the agents made of them, and where they run."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from datetime import tzinfo
from functools import cached_property
from itertools import chain, compress, repeat
from operator import is_
from typing import TYPE_CHECKING, cast

from ..dialect import StatusClass
from ..records import (
    RECORD_CLASS,
    RECORD_EXTRA,
    RECORD_ID,
    RECORD_SESSION,
    RECORD_TASK,
    AgentRecord,
    Columns,
    CursorRecord,
    Owner,
    PaneRecord,
    Scope,
    ServerRecord,
    extensions,
)
from ..tmux import stored_name, stored_names

if TYPE_CHECKING:  # the analysis that composes this view (its context and the other views)
    from . import Analysis


# (an enum member read through its class takes EnumType's lookup, ~75 ns: read once here, not twice an agent)
_ACTIVE, _TERMINAL = StatusClass.ACTIVE, StatusClass.TERMINAL


class Agent:
    """One agent id with every registry record that mentions it (global first).

    Made for every agent of every snapshot, so its facts are computed once, here, and kept in slots.
    """

    __slots__ = ("_ended", "_started", "active", "certain", "cursor_pid", "id", "owner", "pane", "records", "server",
                 "session", "status_class", "terminal")

    def __init__(self, id: str, records: list[AgentRecord], stored: str | None) -> None:
        """``stored``: its session's name as tmux stores it (tmux.stored_name of the first record's), which the
        records view works out for every record at once."""
        self.id = id
        self.records = records
        self._started: float | bool | None = False  # False: not parsed yet (timestamps are parsed on demand)
        self._ended: float | bool | None = False
        head = records[0]
        name = head.tmux_session
        # False: its session, when not found live under that name, may live under another one. Only an ASCII name's
        # stored form is what tmux stored whatever its locale (a non-ASCII name found live so is matched all the same)
        self.certain = stored is not None and name.isascii()
        self.session = name if stored is None else stored
        self.cursor_pid: int | None = None
        self.server: str | None = None
        self.pane: str | None = None
        self.owner: Owner | None = None
        if any(map(RECORD_EXTRA, records)):  # a manager's extension (none on the orchestrator's: skipped in C)
            self._extended(head, records)
        first = self.status_class = head.status_class
        if len(records) > 1 and len(classes := set(map(RECORD_CLASS, records))) > 1:  # records that disagree: rare
            self.active, self.terminal = _ACTIVE in classes, classes == {_TERMINAL}
        else:
            self.active, self.terminal = first is _ACTIVE, first is _TERMINAL

    def _extended(self, head: AgentRecord, records: list[AgentRecord]) -> None:
        """The facts a manager's extensions of the records add."""
        # E3's cursor backend: its process (the first record that names one)
        self.cursor_pid = next((c.pid for _, c in extensions(records, CursorRecord) if c.pid), None)
        on = head.ext(ServerRecord)
        self.server = on.server if on else None  # the one server its session (or pane) may live on (None: any checked)
        placed = head.ext(PaneRecord)  # a teammate's: its pane id, its team's lead
        self.pane, self.owner = (placed.pane, placed.owner) if placed else (None, None)

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

    def __init__(self, authority: tuple[AgentRecord, ...], members: tuple[Scope, ...], columns: Columns | None = None
                 ) -> None:
        # the records as columns, the authority's first (the snapshot's own, shared with the checks, when given)
        self._columns = columns or Columns((authority, *(m.agents for m in members)))
        self._held = held = len(authority)
        member_records = self._columns.records[held:]
        self._authority = dict(zip(map(RECORD_ID, authority), authority, strict=True))
        self._members = dict(zip(map(RECORD_ID, member_records), member_records, strict=True))
        self._lists: dict[str, list[AgentRecord]] | None = None
        if len(self._authority) != len(authority) or len(self._members) != len(member_records):
            lists: defaultdict[str, list[AgentRecord]] = defaultdict(list)
            for record in chain(authority, member_records):
                lists[record.id].append(record)
            self._lists = dict(lists)
        # The authority's record of each member record, in the members' order, where every id is held once by the
        # authority and at most once by the members (else None); None in it where the authority holds none.
        self._paired = list(map(self._authority.get, self._members)) if self._lists is None else None
        # every member's id in the authority (task registries copy the global one): the ids are the authority's
        # (all(): a record is a non-empty tuple, truthy at once; `None in` compared each record with None)
        self._covered = self._paired is not None and all(self._paired)
        self._ids = self._lists.keys() if self._lists is not None else self._authority.keys() if self._covered else (
            dict.fromkeys(chain(self._authority, self._members)).keys())

    def __getitem__(self, agent_id: str) -> list[AgentRecord]:
        if (found := self.records_of(agent_id)) is None:
            raise KeyError(agent_id)
        return found

    def records_of(self, agent_id: str) -> list[AgentRecord] | None:
        """The id's records, or None: asked for every agent made (Mapping.get's own try/except, and a list made by
        a comprehension, were two more frames each time)."""
        if self._lists is not None:
            return self._lists.get(agent_id)
        first, member = self._authority.get(agent_id), self._members.get(agent_id)
        if first is None:
            return None if member is None else [member]
        return [first] if member is None else [first, member]

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def authority(self) -> Mapping[str, AgentRecord]:
        """The authority's record of each id it holds (the last one, where it repeats one)."""
        return self._authority

    @cached_property
    def classes_agree(self) -> bool:
        """Every member record has the authority's record of its id, once, in the same class: then an id's class is
        its authority record's (decided in C: map and list equality)."""
        # (the members' records are _members' values, in order, when every id is held once)
        return self._covered and list(map(RECORD_CLASS, cast("list[AgentRecord]", self._paired))) == (
            self._columns.classes[self._held:])

    @cached_property
    def agree(self) -> bool:
        """classes_agree, and under the same task: the common case of registry agreement, decided in C."""
        return self.classes_agree and list(map(RECORD_TASK, cast("list[AgentRecord]", self._paired))) == list(
            map(RECORD_TASK, self._members.values()))

    def firsts(self) -> list[AgentRecord]:
        """Each id's first record, in the index's order (in C when every id has a global record)."""
        if self._lists is not None:
            return [records[0] for records in self._lists.values()]
        if self._covered:  # the ids are the authority's, in its order
            return list(self._authority.values())
        found = list(map(self._authority.get, self._ids))
        if None in found:
            found = [self._authority.get(i) or self._members[i] for i in self._ids]
        return cast("list[AgentRecord]", found)  # no None left in it (mypy cannot follow `None in found`)


class RecordsView:
    """The records' view: the record index, the agents made of it (on first use), and the project directories."""

    def __init__(self, a: Analysis) -> None:
        self.a = a
        self.snapshot = a.snapshot
        self._made: dict[str, Agent] = {}  # agents made so far (see agent())

    @cached_property
    def index(self) -> RecordIndex:
        """Every agent id's records, global first, in registry order."""
        regs = self.snapshot.registries
        return RecordIndex(regs.authority.agents, regs.members, regs.columns)

    def agent(self, agent_id: str) -> Agent | None:
        """One agent, made on first use: most checks look at a few hundred of 10,000."""
        if (made := self._made.get(agent_id)) is None and (recs := self.index.records_of(agent_id)):
            made = self._made[agent_id] = Agent(agent_id, recs, stored_name(recs[0].tmux_session))
        return made

    def known(self, agent_id: str) -> Agent:
        """The agent of an id taken from the records themselves (as agent(), never None)."""
        if (made := self.agent(agent_id)) is None:
            raise KeyError(agent_id)
        return made

    @cached_property
    def agents(self) -> dict[str, Agent]:
        """Every agent (for the few places that look at all of them: --prune, unknown statuses)."""
        return {aid: self.known(aid) for aid in self.index}

    @cached_property
    def active_agents(self) -> list[Agent]:
        if self.index.classes_agree:  # the common case: an id is active exactly as its authority record says
            held = self.index.authority  # (the authority's records, in order: it holds each id once)
            classes = self.snapshot.registries.columns.classes[:len(held)]
            made = self._made  # (most are made already, by agents_by_session: a dict lookup, not two calls, each)
            return [made.get(aid) or self.known(aid) for aid in compress(held, map(is_, classes, repeat(_ACTIVE)))]
        ids: set[str] = set()
        for f in self.snapshot.registries.scopes:  # in C: 10,000 records a snapshot
            ids.update(compress(map(RECORD_ID, f.agents), map(is_, map(RECORD_CLASS, f.agents), repeat(_ACTIVE))))
        return [self.known(aid) for aid in filter(ids.__contains__, self.index)]

    @cached_property
    def agents_by_session(self) -> dict[str, list[Agent]]:
        """Agents by the name of their session, for the sessions live on any server seen (the only ones asked)."""
        live = self.a.tmux.sessions.keys() | self.a.tmux.other_sessions.keys()
        ids = list(self.index)
        stored = stored_names(list(map(RECORD_SESSION, self.index.firsts())))
        result: dict[str, list[Agent]] = defaultdict(list)
        # an uncertain name (None) is never live
        live_pairs = compress(zip(ids, stored, strict=True), map(live.__contains__, stored))
        pairs = cast("Iterator[tuple[str, str]]", live_pairs)  # (compress keeps only live names, never None)
        made = self._made
        records_of = cast("Callable[[str], list[AgentRecord]]", self.index.records_of)  # (its ids: never None)
        for aid, name in pairs:  # each agent made with its stored name, worked out above (not once more each)
            if (agent := made.get(aid)) is None:
                agent = made[aid] = Agent(aid, records_of(aid), name)
            result[name].append(agent)
        return result

    @cached_property
    def client_dirs(self) -> frozenset[str]:
        """Where this workspace's agents run Claude: each task's `client_cwd`, else the workspace's parent."""
        dirs = {os.path.dirname(self.a.workspace)}
        dirs |= {os.path.realpath(c) for f in self.snapshot.registries.scopes for c in f.client_dirs}
        return frozenset(d for d in dirs if d != "/")

