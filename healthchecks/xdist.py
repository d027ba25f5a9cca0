"""The controller → worker hand-off under pytest-xdist: the machine is read and judged once, on the controller,
and every worker receives the judged results (and the snapshot, only when a test asks for it)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from .run import RUN, WORKDIR, command_hint, is_worker

SHARED = pytest.StashKey[bool]()  # workers were started: hand them the controller's results


class XdistHooks:
    """Registered on the controller only when pytest-xdist is active."""

    def pytest_configure_node(self, node) -> None:
        config = node.config
        if WORKDIR not in config.stash:
            return
        config.stash[SHARED] = True
        node.workerinput["healthchecks_judged"] = str(config.stash[WORKDIR] / "judged.pickle")
        node.workerinput["healthchecks_snapshot"] = str(config.stash[WORKDIR] / "snapshot.pickle")


def hand_over(config: pytest.Config) -> None:
    """Write the files workers read; called after the snapshot, before any test reaches a worker."""
    run = config.stash[RUN]
    if config.stash.get(SHARED, False):
        for name, value in (("judged", run.judged), ("snapshot", run.snapshot)):
            (config.stash[WORKDIR] / f"{name}.pickle").write_bytes(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


def shared(config: pytest.Config, name: str):
    """On the controller (or without xdist), the run's own value; on a worker, the controller's, read once."""
    if is_worker(config):
        if path := config.workerinput.get(f"healthchecks_{name}"):
            return pickle.loads(Path(path).read_bytes())
    elif (run := config.stash.get(RUN, None)) is not None:
        return getattr(run, name)
    pytest.fail(f"agent-healthchecks: no snapshot was taken; run the checks as {command_hint(config)}", pytrace=False)
