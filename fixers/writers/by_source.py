"""Each source's writer, found by its line in healthchecks.sources.SOURCES and imported only here, by the fix."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import cast

from healthchecks.sources import BY_NAME

from . import Writer


def writer_for(source: str) -> Writer | None:
    """The writer of a source (None: its records are never written by a fix)."""
    name = BY_NAME[source].writer
    return cast(Writer, importlib.import_module(name)) if name else None  # (its package checks it against Writer)


def recover_all(workspace: Path, lock_timeout: float) -> list[str]:
    """Every source's leftovers of an interrupted fix, put right (a workspace may have changed store since)."""
    done: list[str] = []
    for source in BY_NAME:
        if (writer := writer_for(source)) is not None:
            done += writer.recover_workspace(workspace, lock_timeout)
    return done


def pending(workspace: Path) -> bool:
    """Whether an interrupted fix left anything to put right (cheap: asked before every --fix)."""
    return any(w.pending(workspace) for s in BY_NAME if (w := writer_for(s)) is not None)
