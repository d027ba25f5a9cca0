"""Where the agents' records live, by orchestrator era: a source reads them into the neutral `Registries`.

- `json` (the JSON eras, E0–E4): `registry/GLOBAL_REGISTRY.json` and `TASK-*/AGENT_REGISTRY.json`
  (healthchecks/registry.py).
- `sqlite` (the current release, E5): `registry/state.sqlite3` is the source of truth; the JSON files are
  mirrors with no agents and stale counters, and are not read (healthchecks/sources/sqlite_state.py).

`auto` (the default) picks sqlite when `state.sqlite3` exists and holds agents, or cannot be read (its
problem is then reported, never papered over by the mirrors); json otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from .. import registry
from ..registry import Registries
from . import sqlite_state

Source = Literal["json", "sqlite"]


def load(workspace: Path, wanted: str, timeout: float) -> Registries:
    """The records from the source asked for; under "auto", one read of the state database decides: it is the
    source when it exists and holds agents or cannot be read, else the JSON registries are read instead."""
    path = workspace / sqlite_state.RELPATH
    if wanted == "json" or (wanted == "auto" and not path.exists() and not path.is_symlink()):
        return registry.load(workspace)
    state = sqlite_state.load(workspace, timeout)
    if wanted == "auto" and state.ok and not state.global_file.agents:
        return registry.load(workspace)
    return state


def fingerprint(workspace: Path, source: Source) -> tuple[tuple[str, str | None], ...]:
    """Changes whenever the records change; compared before and after the live reads of a snapshot."""
    return sqlite_state.fingerprint(workspace) if source == "sqlite" else registry.fingerprint(workspace)
