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


def detect(workspace: Path, timeout: float) -> Source:
    path = workspace / sqlite_state.RELPATH
    if not path.exists() and not path.is_symlink():
        return "json"
    return "json" if sqlite_state.agent_count(path, timeout) == 0 else "sqlite"


def choose(workspace: Path, wanted: str, timeout: float) -> Source:
    return detect(workspace, timeout) if wanted == "auto" else wanted  # type: ignore[return-value]


def load(workspace: Path, source: Source, timeout: float) -> Registries:
    return sqlite_state.load(workspace, timeout) if source == "sqlite" else registry.load(workspace)


def fingerprint(workspace: Path, source: Source) -> tuple[tuple[str, str | None], ...]:
    """Changes whenever the records change; compared before and after the live reads of a snapshot."""
    if source == "sqlite":
        return sqlite_state.fingerprint(workspace)
    from ..snapshot import fingerprint as json_fingerprint

    return json_fingerprint(workspace)
