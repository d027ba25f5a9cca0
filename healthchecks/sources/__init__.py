"""Every record store the checks can read, in one table: SOURCES. Nothing outside this table names a source.

A source is a reader module (here, in `healthchecks/sources/`) and optionally a writer module (in
`fixers/writers/`, named in the table and imported only by the fix: readers never import writers). A reader
module provides:

- ``present(workspace) -> bool``: whether its store is there (`auto` tries the sources in table order);
- ``load(workspace, timeout) -> Records``: the neutral model (healthchecks.records), with its Dialect;
- ``fingerprint(workspace) -> Fingerprint``: cheap, changes whenever a record does (compared after the live reads);
- ``flocked(workspace, records | None) -> set[Path]``: the files its manager flocks to write them, held still under
  a shared flock while a snapshot reads (healthchecks.holding); empty when it locks otherwise.

A writer module provides ``check(records, edits, lock_timeout) -> str | None`` (why the plan cannot be written:
one line, nothing written), ``write(records, edits, lock_timeout) -> Written`` and ``recover(workspace,
lock_timeout) -> list[str]`` (finish what an interrupted fix left); see fixers/writers/__init__.py.

`auto` (the default) takes the first source in table order whose store is present and that holds agents or
cannot be read (a problem is reported, never papered over by an older store); the last line is the fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..records import Fingerprint, Records
from . import json_registry, sqlite_state


@dataclass(frozen=True)
class Source:
    name: str  # --source NAME, settings.source in every output, the records_source gauge
    reader: ModuleType
    writer: str | None  # the module that writes its records under --fix (None: records are never written)
    demo: str | None  # --demo-source NAME builds this era's world (healthchecks.testing.world)
    about: str  # one line for --help


SOURCES: tuple[Source, ...] = (
    Source("sqlite", sqlite_state, "fixers.writers.sqlite_state", "sqlite",
           "registry/state.sqlite3, the orchestrator's current release"),
    Source("json", json_registry, "fixers.writers.json_registry", "json",
           "registry/*.json, the orchestrator's releases up to 2026-01"),
)
BY_NAME = {s.name: s for s in SOURCES}
NAMES = tuple(BY_NAME)
CHOICES = ("auto", *NAMES)
DEMOS = tuple(s.demo for s in SOURCES if s.demo)


def load(workspace: Path, wanted: str, timeout: float) -> Records:
    """The records from the source asked for; under "auto", the first present store that holds agents or cannot
    be read, else the last source's."""
    if wanted != "auto":
        return BY_NAME[wanted].reader.load(workspace, timeout)
    *first, last = SOURCES
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
    chosen = SOURCES if wanted == "auto" else (BY_NAME[wanted],)
    return set().union(*(s.reader.flocked(workspace, None) for s in chosen))


def fingerprint(workspace: Path, records: Records) -> Fingerprint:
    """Changes whenever the records change; compared before and after the live reads of a snapshot."""
    return BY_NAME[records.source].reader.fingerprint(workspace)
