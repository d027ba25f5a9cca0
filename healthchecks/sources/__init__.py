"""Every record store the checks can read, in one table: SOURCES. Nothing outside this table names a source.

A source is a reader module (here, in `healthchecks/sources/`) and optionally a writer module (in
`fixers/writers/`, named in the table and imported only by the fix: readers never import writers). A reader
module provides:

- ``present(workspace) -> bool``: whether its store is there (`auto` tries the sources in table order);
- ``load(workspace, timeout) -> Records``: the neutral model (healthchecks.records), with its Dialect;
- ``fingerprint(workspace, before) -> Fingerprint``: cheap, changes whenever a record does (compared after the live
  reads with ``before``, the fingerprint ``load`` read: a file it digested is digested again, safe_files.digested);
- ``flocked(workspace, records | None) -> set[Path]``: the files its manager flocks to write them, held still under
  a shared flock while a snapshot reads (healthchecks.holding); empty when it locks otherwise.
- optionally ``OPTIONS`` ((flag, help, default), ...) and ``locate(values) -> Path``: a store that lives in a
  place of its own (a manager's home directory) rather than in the workspace; the place it names becomes the
  run's workspace (what is locked, owned and looked inside), see resolve().

A writer module provides ``check(records, edits, lock_timeout) -> str | None`` (why the plan cannot be written:
one line, nothing written), ``write(records, edits, lock_timeout) -> Written`` and ``recover(workspace,
lock_timeout) -> list[str]`` (finish what an interrupted fix left); see fixers/writers/__init__.py.

`auto` (the default) takes the first source in table order whose store is present and that holds agents or
cannot be read (a problem is reported, never papered over by an older store); the last line is the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..records import Fingerprint, Records
from . import agent_deck, agent_teams, claude_squad, json_registry, sqlite_state


class Reader(Protocol):
    """A reader module, as the docstring above describes it (positional parameters: each names them its own way)."""

    def present(self, workspace: Path, /) -> bool: ...
    def load(self, workspace: Path, timeout: float, /) -> Records: ...
    def fingerprint(self, workspace: Path, before: Fingerprint, /) -> Fingerprint: ...
    def flocked(self, workspace: Path, records: Records | None, /) -> set[Path]: ...


@runtime_checkable
class PlacedReader(Reader, Protocol):
    """A reader of a store that lives in a place of its own, which ``locate`` finds from its ``OPTIONS``."""

    OPTIONS: tuple[tuple[str, str, str], ...]

    def locate(self, values: Mapping[str, str], /) -> Path: ...


@dataclass(frozen=True)
class Source:
    name: str  # --source NAME, settings.source in every output, the records_source gauge
    reader: Reader
    writer: str | None  # the module that writes its records under --fix (None: records are never written)
    demo: str | None  # --demo-source NAME builds this era's world (healthchecks.testing.world)
    about: str  # one line for --help


SOURCES: tuple[Source, ...] = (
    Source("sqlite", sqlite_state, "fixers.writers.sqlite_state", "sqlite",
           "registry/state.sqlite3, the orchestrator's current release"),
    Source("json", json_registry, "fixers.writers.json_registry", "json",
           "registry/*.json, the orchestrator's releases up to 2026-01"),
    Source(claude_squad.NAME, claude_squad, None, claude_squad.NAME,
           "claude-squad's state.json (--claude-squad-dir); never written"),
    Source(agent_deck.NAME, agent_deck, None, agent_deck.NAME,
           "agent-deck's state.db (--agent-deck-db, --agent-deck-profile); never written"),
    Source(agent_teams.NAME, agent_teams, "fixers.writers.agent_teams", agent_teams.NAME,
           "teams/*/config.json in Claude's config dir (--claude-config-dir), Claude Code Agent Teams"),
)
BY_NAME = {s.name: s for s in SOURCES}
NAMES = tuple(BY_NAME)
CHOICES = ("auto", *NAMES)
DEMOS = tuple(s.demo for s in SOURCES if s.demo)


PLACED = {s.name: s.reader for s in SOURCES if isinstance(s.reader, PlacedReader)}  # stores outside the workspace
IN_WORKSPACE = tuple(s for s in SOURCES if s.name not in PLACED)
STORE_OPTIONS = tuple(opt for reader in PLACED.values() for opt in reader.OPTIONS)


def resolve(workspace: Path, wanted: str, values: Mapping[str, str]) -> tuple[str, Path]:
    """The source and the workspace a run judges. A store of its own place is its own workspace; `auto` takes one
    only when nothing of the orchestrator is in the workspace, and then the first whose store is present."""
    if wanted in PLACED:
        return wanted, PLACED[wanted].locate(values)
    if wanted == "auto" and not workspace.exists():  # nothing of the orchestrator is there
        for name, reader in PLACED.items():
            place = reader.locate(values)
            if reader.present(place):
                return name, place
    return wanted, workspace


def load(workspace: Path, wanted: str, timeout: float) -> Records:
    """The records from the source asked for; under "auto", the first present store of the workspace that holds
    agents or cannot be read, else the last of the workspace's sources."""
    if wanted != "auto":
        return BY_NAME[wanted].reader.load(workspace, timeout)
    *first, last = IN_WORKSPACE
    for source in first:
        if source.reader.present(workspace):
            found = source.reader.load(workspace, timeout)
            if not found.ok or found.authority.agents:
                return found
    return last.reader.load(workspace, timeout)


def flocked(workspace: Path, wanted: str, records: Records | None = None) -> set[Path]:
    """The files whose manager takes a flock on them to write (held still while a snapshot reads): of the records'
    own source once they are read, else of every source ``wanted`` may read."""
    if records is not None:
        return BY_NAME[records.source].reader.flocked(workspace, records)
    chosen = IN_WORKSPACE if wanted == "auto" else (BY_NAME[wanted],)
    return set().union(*(s.reader.flocked(workspace, None) for s in chosen))


def fingerprint(workspace: Path, records: Records) -> Fingerprint:
    """Changes whenever the records change; compared before and after the live reads of a snapshot."""
    return BY_NAME[records.source].reader.fingerprint(workspace, records.fingerprint)
