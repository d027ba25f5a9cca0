"""The built-in demo (--demo, --demo-source NAME): the world a source's line names (healthchecks.sources.DEMOS).

Each manager's package builds its own demo world; this module only finds it by the table, so the checks import
no world until --demo asks for one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, cast

from ..settings import Settings
from ..sources import DEMOS


class DemoWorld(Protocol):
    """A started world: the settings that judge it, and its teardown (ends only what it started)."""

    @property
    def settings(self) -> Settings: ...
    def teardown(self) -> None: ...


Builder = Callable[[Path, float], DemoWorld]  # (root, grace) -> the started world; the caller tears it down


def build(root: Path, grace: float = 0.3, era: str = "json") -> DemoWorld:
    """Describe and start the demo world of source ``era`` under ``root``; the caller tears it down."""
    module, _, name = DEMOS[era].partition(":")
    return cast(Builder, getattr(importlib.import_module(module), name))(root, grace)
