"""Fixtures for the project's own tests, and the bound on each test's time."""

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

# Seconds a test may take, setup and teardown included (pytest-timeout, by SIGALRM): a hung test fails with its
# stack, its fixtures still end what it started, and the run goes on. Set here, not in pyproject.toml's ini, so
# `pytest healthchecks` runs for operators exactly as before.
TIMEOUT = 300
LONGER = {"real_claude": 1500,  # its first test installs Claude Code: an install lock and npm, up to 600 s each
          "real_programs": 2000}  # the first installs the programs: an install lock, npm and pip, up to 900 s each


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test without a `timeout` mark of its own gets the default bound."""
    for item in items:
        if item.get_closest_marker("timeout") is None:
            seconds = max([TIMEOUT, *(s for mark, s in LONGER.items() if item.get_closest_marker(mark))])
            item.add_marker(pytest.mark.timeout(seconds, method="signal"))


@pytest.fixture
def world(tmp_path: Path):
    w = World(tmp_path / "world")
    yield w
    w.teardown()
