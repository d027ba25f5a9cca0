"""Gas Town: its reader, dialect, world for tests and demo (never written: no writer); SOURCE is its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import GAS_TOWN

if TYPE_CHECKING:  # the demo named below, checked against its protocol
    from ...testing.demo import Builder
    from . import world

    _CHECKED: Builder = world.town_demo

SOURCE = Source(reader.NAME, reader, (GAS_TOWN,),
                "a Gas Town town (--gt-town): its tmux server's sessions and their GT_* env, .runtime/pids; never "
                "written", Place(reader.OPTIONS, reader.locate, reader.load_given), demo=f"{__name__}.world:town_demo")
