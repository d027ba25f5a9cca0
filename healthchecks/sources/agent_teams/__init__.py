"""Claude Code Agent Teams: its reader, dialect, writer, world for tests, demo and bench world; SOURCE is its table
line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import AGENT_TEAMS

if TYPE_CHECKING:  # the writer, demo and bench world named below, checked against their protocols
    from fixers.writers import Writer

    from ...testing.bench import BenchBuilder
    from ...testing.demo import Builder
    from . import world, writer

    _CHECKED: tuple[Writer, Builder, BenchBuilder] = (writer, world.demo, world.bench)

SOURCE = Source(reader.NAME, reader, (AGENT_TEAMS,),
                "teams/*/config.json in Claude's config dir (--claude-config-dir), Claude Code Agent Teams",
                Place(reader.OPTIONS, reader.locate), writer=f"{__name__}.writer", demo=f"{__name__}.world:demo",
                bench=f"{__name__}.world:bench")
