"""Every record store the checks can read, in one table: SOURCES. Nothing outside this table names a source.

A source is a reader module (here, in `healthchecks/sources/`) and optionally a writer module (in
`fixers/writers/`, named in the table and imported only by the fix: readers never import writers). A reader
module provides:

- ``present(root) -> bool``: whether its store is there (`auto` tries the sources in table order);
- ``load(root, timeout) -> Records``: the neutral model (healthchecks.records), with its Dialect;
- ``fingerprint(root) -> Fingerprint``: cheap, changes whenever a record does (compared after the live reads).

``root`` is the directory its store lives in: the Settings field the table line names (the orchestrator's
workspace, Claude's config dir).

A writer module provides ``check(records, edits, lock_timeout) -> str | None`` (why the plan cannot be written:
one line, nothing written), ``write(records, edits, lock_timeout) -> Written`` and ``recover(workspace,
lock_timeout) -> list[str]`` (finish what an interrupted fix left); see fixers/writers/__init__.py.

`auto` (the default) takes the first source in table order whose store is present and that holds agents or
cannot be read (a problem is reported, never papered over by an older store); a line marked ``auto_last`` is
tried only when no other source's directory exists at all; the last unmarked line is the fallback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..records import Fingerprint, Records
from . import agent_teams, json_registry, sqlite_state


@dataclass(frozen=True)
class Source:
    name: str  # --source NAME, settings.source in every output, the records_source gauge
    reader: ModuleType
    writer: str | None  # the module that writes its records under --fix (None: records are never written)
    demo: str | None  # --demo-source NAME builds this era's world (healthchecks.testing.world)
    about: str  # one line for --help
    root: str = "workspace"  # the Settings field naming the directory its store lives in
    auto_last: bool = False  # auto takes it only when no other source's store is present


SOURCES: tuple[Source, ...] = (
    Source("sqlite", sqlite_state, "fixers.writers.sqlite_state", "sqlite",
           "registry/state.sqlite3, the orchestrator's current release"),
    Source("json", json_registry, "fixers.writers.json_registry", "json",
           "registry/*.json, the orchestrator's releases up to 2026-01"),
    Source("agent-teams", agent_teams, "fixers.writers.agent_teams", "agent-teams",
           "teams/*/config.json in Claude's config dir (--claude-config-dir), Claude Code Agent Teams",
           root="claude_config_dir", auto_last=True),
)
BY_NAME = {s.name: s for s in SOURCES}
NAMES = tuple(BY_NAME)
CHOICES = ("auto", *NAMES)
DEMOS = tuple(s.demo for s in SOURCES if s.demo)


Roots = Callable[[Source], Path]  # where a source's store lives (Settings.root)


def load(roots: Roots, wanted: str, timeout: float) -> Records:
    """The records of the source asked for; under "auto", the first present store that holds agents or cannot be
    read; when no ordinary source's directory exists at all, an ``auto_last`` one whose store is present; else the
    last ordinary line's."""
    if wanted != "auto":
        return BY_NAME[wanted].reader.load(roots(BY_NAME[wanted]), timeout)
    ordinary = [s for s in SOURCES if not s.auto_last]
    *first, last = ordinary
    for source in first:
        if source.reader.present(roots(source)):
            found = source.reader.load(roots(source), timeout)
            if not found.ok or found.authority.agents:
                return found
    if not any(roots(s).exists() for s in ordinary):  # nothing of theirs here at all
        for source in SOURCES:
            if source.auto_last and source.reader.present(roots(source)):
                return source.reader.load(roots(source), timeout)
    return last.reader.load(roots(last), timeout)


def fingerprint(records: Records) -> Fingerprint:
    """Changes whenever the records change; compared before and after the live reads of a snapshot."""
    return BY_NAME[records.source].reader.fingerprint(records.workspace)
