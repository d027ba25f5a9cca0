"""Claude Code's own background agents (`claude --bg`): their reader, dialect, writer (Claude Code's own CLI), world
for tests and demo; SOURCE is its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import CLAUDE_BACKGROUND

if TYPE_CHECKING:  # the writer and demo named below, checked against their protocols
    from fixers.writers import Writer

    from ...testing.demo import Builder
    from . import world, writer

    _CHECKED: tuple[Writer, Builder] = (writer, world.demo)

SOURCE = Source(reader.NAME, reader, (CLAUDE_BACKGROUND,),
                "jobs/*/state.json, the daemon's roster and sessions/*.json in Claude's config dir "
                "(--claude-config-dir): Claude Code's own background agents (`claude --bg`)",
                Place(reader.OPTIONS, reader.locate), writer=f"{__name__}.writer", demo=f"{__name__}.world:demo",
                managed=reader.managed)
