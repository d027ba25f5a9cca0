"""agent-deck: its reader, dialect, world for tests, demo and bench world (never written: no writer); SOURCE is its
table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import AGENT_DECK

if TYPE_CHECKING:  # the demo and bench world named below, checked against their protocols
    from ...testing.bench import BenchBuilder
    from ...testing.demo import Builder
    from . import world

    _CHECKED: tuple[Builder, BenchBuilder] = (world.deck_demo, world.deck_bench)

SOURCE = Source(reader.NAME, reader, (AGENT_DECK,),
                "agent-deck's state.db (--agent-deck-db, --agent-deck-profile); never written",
                Place(reader.OPTIONS, reader.locate), demo=f"{__name__}.world:deck_demo",
                bench=f"{__name__}.world:deck_bench")
