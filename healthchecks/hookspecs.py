"""Hooks other plugins and conftest.py files implement (pytest-html's hooks.py, in this project's terms)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .checks import CheckRegistry


@pytest.hookspec(historic=True)
def pytest_healthchecks_register(registry: CheckRegistry) -> None:
    """Add checks to this run: ``registry.add(id, title, judge, needs=(), fixer=None)`` or ``@registry.check(...)``.

    Called once on the controller and in every xdist worker, before the machine is read, so a check
    added here is judged, reported in every output and fixed like the built-in ones.
    """
