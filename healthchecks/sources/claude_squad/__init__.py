"""claude-squad: its reader, dialect, world for tests, demo and bench world (never written: no writer); SOURCE is
its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import CLAUDE_SQUAD

if TYPE_CHECKING:  # the demo and bench world named below, checked against their protocols
    from ...testing.bench import BenchBuilder
    from ...testing.demo import Builder
    from . import world

    _CHECKED: tuple[Builder, BenchBuilder] = (world.squad_demo, world.squad_bench)

SOURCE = Source(reader.NAME, reader, (CLAUDE_SQUAD,), "claude-squad's state.json (--claude-squad-dir); never written",
                Place(reader.OPTIONS, reader.locate), demo=f"{__name__}.world:squad_demo",
                bench=f"{__name__}.world:squad_bench")
