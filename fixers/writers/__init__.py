"""Writers: each changes one source's records the way that manager's own code does (fixers only).

A writer module lives in its manager's package (healthchecks/sources/<manager>/), is named by its source's line in
healthchecks.sources.SOURCES and imported only by the fix (by_source.py): readers never import writers. It provides:

- ``check(records, edits, lock_timeout) -> str | None``: why the edits cannot be written (one line), made before
  any action of the plan: nothing is written or signalled there;
- ``write(records, edits, lock_timeout) -> Written``: every verified edit, under the manager's own lock, backed up
  first; per agent id (and per counter scope) what was done or why it failed;
- ``pending(workspace) -> bool`` and ``recover_workspace(workspace, lock_timeout) -> list[str]``: whether an interrupted
  fix left something (a torn file), and putting it right, first thing in the next fix.

The record phase of fixers.apply knows only this protocol; a source without a writer is never written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from healthchecks.records import Records, RegistryError
from healthchecks.targets import CounterTarget


@dataclass(frozen=True)
class Edits:
    """What the record phase asks of a writer, all verified against a snapshot taken at that moment."""

    marks: frozenset[str]  # agent ids to mark dead, the dialect's way
    prunes: frozenset[str]  # agent ids to archive and remove
    counter_scopes: frozenset[str]  # paths of scopes whose counters are recomputed
    counters: bool  # recompute counters of every scope written (the counters check is part of this run)
    now: str  # the time written into marks and archive rows
    archive: Path  # the JSON-lines file pruned records go to, whole, before they are removed
    archives: frozenset[str] = frozenset()  # whole scopes (a team's directory) to move into the store's archive
    waived: frozenset[CounterTarget] = frozenset()  # counters a person waived: never written, whatever else is

    @cached_property
    def ids(self) -> frozenset[str]:
        """Every agent id the edits change, made once: asked once per action and per record (never rebuilt)."""
        return self.marks | self.prunes


@dataclass
class Written:
    """What a writer did: per agent id (and per counter scope path) a detail, or why it failed."""

    done: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    left: str = "entry changed since the snapshot; left as it is"  # said for an id neither done nor failed


class Writer(Protocol):
    """A writer module, as the docstring above describes it (positional parameters: each names them its own way)."""

    def check(self, records: Records, edits: Edits, lock_timeout: float, /) -> str | None: ...
    def write(self, records: Records, edits: Edits, lock_timeout: float, /) -> Written: ...
    def pending(self, workspace: Path, /) -> bool: ...
    def recover_workspace(self, workspace: Path, lock_timeout: float, /) -> list[str]: ...


def failure(exc: Exception) -> str:
    """One line for why a write failed: the store's first problem, else the first line of what the system said."""
    return str(exc.problem) if isinstance(exc, RegistryError) else str(exc).splitlines()[0]
