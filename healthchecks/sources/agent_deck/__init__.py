"""agent-deck: its reader, dialect, world for tests and demo (never written: no writer); SOURCE is its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import AGENT_DECK

if TYPE_CHECKING:  # the demo named below, checked against its protocol
    from ...testing.demo import Builder
    from . import world

    _CHECKED: Builder = world.deck_demo

SOURCE = Source(reader.NAME, reader, (AGENT_DECK,),
                "agent-deck's state.db (--agent-deck-db, --agent-deck-profile); never written",
                Place(reader.OPTIONS, reader.locate), demo=f"{__name__}.world:deck_demo")
