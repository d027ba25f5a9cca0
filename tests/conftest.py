"""Fixtures for the project's own tests."""

import os
import tempfile
from pathlib import Path

import pytest

from healthchecks import sightings
from healthchecks.testing.world import World

# Every run these tests start (in process or as `pytest healthchecks`) keeps its lineage in a state directory of its
# own: never the person's ~/.local/state. Removed when the test process exits.
_STATE = tempfile.TemporaryDirectory(prefix="hc-state-")
os.environ[sightings.STATE_ENV] = _STATE.name


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path / "world")
    yield w
    w.teardown()
