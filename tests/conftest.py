"""Fixtures for the project's own tests."""

from pathlib import Path

import pytest

from healthchecks.testing.world import World


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path / "world")
    yield w
    w.teardown()
