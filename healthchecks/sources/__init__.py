"""Every record store the checks can read, in one table: SOURCES. Nothing outside this table and the managers'
packages names a source.

Each manager's package (healthchecks/sources/<manager>/) holds its reader, its dialects (data), its writer where its
protocol allows one, its world for tests and its demo, and defines its line: a typed Source (healthchecks.sources.
source). One line here registers it; the --source and --demo-source choices, the options of stores of a place of
their own, the dialects the analysis knows, the schema's enum (checked by a test) and the bench's rounds all come
from this table.

`auto` (the default) takes the first source in table order whose store is present and that holds agents or
cannot be read (a problem is reported, never papered over by an older store); the last line is the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..dialect import Dialect
from ..records import Fingerprint, Records
from . import agent_deck, agent_teams, aoe, claude_background, claude_squad, gastown, orchestrator
from .source import Place, Source

SOURCES: tuple[Source, ...] = (
    orchestrator.SQLITE,
    orchestrator.JSON,
    claude_squad.SOURCE,
    agent_deck.SOURCE,
    aoe.SOURCE,
    agent_teams.SOURCE,
    claude_background.SOURCE,
    gastown.SOURCE,
)
BY_NAME = {s.name: s for s in SOURCES}
NAMES = tuple(BY_NAME)
ALL = "all"  # every present store, from one machine scan (healthchecks.observe.observe_machine)
CHOICES = ("auto", ALL, *NAMES)
DEMOS = {s.name: s.demo for s in SOURCES if s.demo}  # --demo-source NAME -> the builder of its world
DIALECTS: tuple[Dialect, ...] = tuple(d for s in SOURCES for d in s.dialects)  # every manager's, each once

PLACED: dict[str, Place] = {s.name: s.place for s in SOURCES if s.place}  # stores outside the workspace
IN_WORKSPACE = tuple(s for s in SOURCES if s.name not in PLACED)
# each option once: two stores of one place share it (Claude Code's --claude-config-dir)
STORE_OPTIONS = tuple(dict.fromkeys(opt for place in PLACED.values() for opt in place.options))


def present_stores(workspace: Path, values: Mapping[str, str], more: tuple[Path, ...] = ()
                   ) -> tuple[tuple[str, Path], ...]:
    """Every store present on this machine, as (source, place): each workspace that exists ("auto": whichever of its
    sources is there) and each placed store where this run's values (or its default) put it."""
    found = [("auto", w) for w in dict.fromkeys((workspace, *more)) if w.exists()]  # (its JSON era: any folder)
    for name, place in PLACED.items():
        if BY_NAME[name].reader.present(where := place.locate(values)):
            found.append((name, where))
    return tuple(found)


def resolve(workspace: Path, wanted: str, values: Mapping[str, str], more: tuple[Path, ...] = ()
            ) -> tuple[str, Path]:
    """The source and the workspace a run judges. A store of its own place is its own workspace; `auto` judges
    every present store ("all") when there is more than one; else it takes one only when nothing of the
    orchestrator is in the workspace, and then the first whose store is present."""
    if wanted in PLACED:
        return wanted, PLACED[wanted].locate(values)
    if wanted == "auto" and len(present_stores(workspace, values, more)) > 1:
        return ALL, workspace
    if wanted == "auto" and not workspace.exists():  # nothing of the orchestrator is there
        for name, place in PLACED.items():
            where = place.locate(values)
            if BY_NAME[name].reader.present(where):
                return name, where
    return wanted, workspace


def managed(values: Mapping[str, str]) -> dict[int, tuple[int, str]]:
    """Every process a manager's own files prove its own (Source.managed), in any source's run: pid -> (start
    ticks, what proves it), read once per snapshot from the places these option values (else their defaults) name."""
    found: dict[int, tuple[int, str]] = {}
    for source in SOURCES:
        if source.managed is not None:
            found.update(source.managed(values))
    return found


def given(name: str, values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The values given to the options of the store ``name`` resolved to, as (flag, value) pairs: what the run's
    settings carry to its Place.load (Settings.place_options); every store's under "all"."""
    places = PLACED.values() if name == ALL else [p for p in [PLACED.get(name)] if p is not None]
    return tuple((flag, v) for place in places for flag, _, _ in place.options if (v := values.get(flag)))


def load(workspace: Path, wanted: str, timeout: float, options: tuple[tuple[str, str], ...] = ()) -> Records:
    """The records from the source asked for (a placed store's own load given this run's ``options``, when it has
    one); under "auto", the first present store of the workspace that holds agents or cannot be read, else the last
    of the workspace's sources."""
    if (place := PLACED.get(wanted)) is not None and place.load is not None:
        return place.load(workspace, timeout, dict(options))
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


def manager_name(source: str) -> str:
    """The manager a source's records are, as findings and metrics name it: the orchestrator's two eras are one."""
    return source if source in PLACED else "orchestrator"
