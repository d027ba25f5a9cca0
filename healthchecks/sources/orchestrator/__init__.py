"""ClaudeOrchestratorMCP: its JSON registries (eras E0-E4) and its state database (E5), two lines of the table.

One package for both eras: they share the manager's dialect data (statuses, launch flags, id shape, evidence), its
world for tests (healthchecks.testing.world.World, whose `era` picks the store), its demo and the bench's fleet;
only the store read and written differs (json_registry and json_writer; sqlite_state and sqlite_writer).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..source import Source
from . import json_registry, sqlite_state
from .dialect import ORCHESTRATOR_FIRST, ORCHESTRATOR_JSON, ORCHESTRATOR_SQLITE

if TYPE_CHECKING:  # the writers, demos and bench world named below, checked against their protocols
    from fixers.writers import Writer

    from ...testing.bench import BenchBuilder
    from ...testing.demo import Builder
    from . import demo, json_writer, sqlite_writer

    _CHECKED: tuple[Writer, Writer, Builder, Builder, BenchBuilder] = (
        json_writer, sqlite_writer, demo.json_demo, demo.sqlite_demo, demo.sqlite_bench)

SQLITE = Source(sqlite_state.NAME, sqlite_state, (ORCHESTRATOR_SQLITE,),
                "registry/state.sqlite3, the orchestrator's current release",
                writer=f"{__name__}.sqlite_writer", demo=f"{__name__}.demo:sqlite_demo",
                bench=f"{__name__}.demo:sqlite_bench")
# no bench round of its own: the bench's main rounds measure this era (bench/run.py, `measure`)
JSON = Source(json_registry.NAME, json_registry, (ORCHESTRATOR_FIRST, ORCHESTRATOR_JSON),
              "registry/*.json, the orchestrator's releases up to 2026-01",
              writer=f"{__name__}.json_writer", demo=f"{__name__}.demo:json_demo")
