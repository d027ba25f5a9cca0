"""The bench's source rounds (bench/run.py): the world each source's line names (Source.bench), built by its
manager's package at one size, with the raw read of its store that the bench takes as the store's floor.

Each manager's package builds its own world and says what its floor reads; the bench adds the live floor (one
`list-panes -a` of the world's server, one `ps`) and names no manager. Like the demo, nothing here is imported by
the checks.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar, cast

from ..sources.source import Source
from .demo import DemoWorld


@dataclass(frozen=True)
class BenchWorld:
    """A started world the bench measures, a healthy fleet (its findings are expected to pass), and the raw read of
    its store that no reader can beat."""

    world: DemoWorld  # its settings judge it; its teardown ends what it started
    agents: int  # the records in its store
    sessions: int  # the live sessions among them
    raw_read: Callable[[], object]  # the store read raw: json.loads of its file(s), SELECT * FROM its table
    raw_is: str  # that read in a few words, e.g. "SELECT * FROM agents"
    note: str = ""  # anything else its line should say of the world, e.g. "20 teams x 5 members"


BenchBuilder = Callable[[Path, int], BenchWorld]  # (root, size) -> the started world; the caller tears it down


class _Startable(Protocol):
    def start(self, timeout: float = ...) -> object: ...
    def teardown(self) -> None: ...


W = TypeVar("W", bound=_Startable)


def started(world: W, timeout: float = 600.0) -> W:
    """``world`` started (a big one takes a while), or torn down when it cannot be: nothing left running."""
    try:
        world.start(timeout)
    except BaseException:
        world.teardown()
        raise
    return world


def build(source: Source, root: Path, size: int) -> BenchWorld:
    """The bench world of ``source``'s line at ``size``, started under ``root``; the caller tears it down."""
    assert source.bench, f"{source.name} has no bench world"
    module, _, name = source.bench.partition(":")
    return cast(BenchBuilder, getattr(importlib.import_module(module), name))(root, size)
