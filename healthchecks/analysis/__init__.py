"""Relate a snapshot's parts to each other once, so every check judges from the same facts.

Pure: a snapshot in, plain values out. Nothing here reads the machine. An `Analysis` holds the context every check
needs (the snapshot, its settings, now) and composes four views, each with one job, each made on first use and each
computing a fact only when a check asks for it: `records` (the record index, the agents), `tmux` (live sessions,
sharing, clients), `attribution` (Claude processes and their evidence) and `owned` (pane-placed records, owners).
"""

from __future__ import annotations

import os
from functools import cached_property

from ..snapshot import Snapshot
from .agents import Agent, RecordIndex, RecordsView
from .attribution import Attribution, Classified, Clue, Evidence
from .owned import OwnedView
from .sessions import LiveSession, TmuxView

__all__ = ["Agent", "Analysis", "Attribution", "Classified", "Clue", "Evidence", "LiveSession", "OwnedView",
           "RecordIndex", "RecordsView", "TmuxView"]


class Analysis:
    """Derived views of one snapshot, computed lazily and at most once."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.settings = snapshot.settings
        self.tz = snapshot.settings.tz
        self.now = snapshot.taken_at
        self.workspace = os.path.realpath(snapshot.settings.workspace)

    @cached_property
    def records(self) -> RecordsView:
        return RecordsView(self)

    @cached_property
    def tmux(self) -> TmuxView:
        return TmuxView(self)

    @cached_property
    def attribution(self) -> Attribution:
        return Attribution(self)

    @cached_property
    def owned(self) -> OwnedView:
        return OwnedView(self)

    def past_grace(self, moment: float | None) -> bool:
        """Within grace only when known and less than grace away, either side: a timestamp far in the
        future (another time zone, a skewed clock) must not protect an agent for ever."""
        return moment is None or abs(self.now - moment) >= self.settings.grace

    @property
    def children(self) -> dict[int, list[int]]:
        """pid -> its children's pids, as the snapshot kept it from its collect."""
        return self.snapshot.children

    def inside_workspace(self, path: str) -> bool:
        return path == self.workspace or path.startswith(self.workspace + "/")
