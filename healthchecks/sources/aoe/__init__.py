"""agent-of-empires (`aoe`): its reader, dialect, world for tests and demo (never written: no writer); SOURCE is
its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import AOE

if TYPE_CHECKING:  # the demo named below, checked against its protocol
    from ...testing.demo import Builder
    from . import world

    _CHECKED: Builder = world.aoe_demo

SOURCE = Source(reader.NAME, reader, (AOE,),
                "agent-of-empires' profiles/<profile>/sessions.json (--aoe-dir, --aoe-profile); never written",
                Place(reader.OPTIONS, reader.locate), demo=f"{__name__}.world:aoe_demo")
