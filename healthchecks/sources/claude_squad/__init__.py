"""claude-squad: its reader, dialect, world for tests and demo (never written: no writer); SOURCE is its table line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Place, Source
from . import reader
from .dialect import CLAUDE_SQUAD

if TYPE_CHECKING:  # the demo named below, checked against its protocol
    from ...testing.demo import Builder
    from . import world

    _CHECKED: Builder = world.squad_demo

SOURCE = Source(reader.NAME, reader, (CLAUDE_SQUAD,), "claude-squad's state.json (--claude-squad-dir); never written",
                Place(reader.OPTIONS, reader.locate), demo=f"{__name__}.world:squad_demo")
