"""Gas Town: its reader, dialect, world for tests and demo (never written: no writer); SOURCE is its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import GAS_TOWN

if TYPE_CHECKING:  # the demo and bench world named below, checked against their protocols
    from ...testing.bench import BenchBuilder
    from ...testing.demo import Builder
    from . import world

    _CHECKED: tuple[Builder, BenchBuilder] = (world.town_demo, world.town_bench)

SOURCE = Source(reader.NAME, reader, (GAS_TOWN,),
                "a Gas Town town (--gt-town): its tmux server's sessions and their GT_* env, .runtime/pids; never "
                "written", Place(reader.OPTIONS, reader.locate, reader.load_given), demo=f"{__name__}.world:town_demo",
                bench=f"{__name__}.world:town_bench")
