"""The controller → worker hand-off under pytest-xdist: the machine is read and judged once, on the controller,
and every worker receives the judged results (and the snapshot, only when a test asks for it)."""

from __future__ import annotations

import contextlib
import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import pytest

from .run import RUN, WORKDIR, Judged, command_hint, is_worker, selected_checks

if TYPE_CHECKING:
    from .snapshot import Snapshot

SHARED = pytest.StashKey[bool]()  # workers were started: hand them the controller's results


class XdistHooks:
    """Registered on the controller only when pytest-xdist is active. Under --fix, each worker writes the checks
    it collected (after -k, -m) to a file; once every worker has, and before any test is handed out, the fix runs
    on the controller with their union, and the workers then judge the state it left."""

    def __init__(self, on_selected: Callable[[pytest.Config, set[str]], None] | None = None) -> None:
        self.on_selected = on_selected
        self.nodes: list[str] = []
        self.collected = 0

    def pytest_configure_node(self, node: Any) -> None:  # xdist's WorkerController (xdist ships no types)
        config = node.config
        if WORKDIR not in config.stash:
            return
        config.stash[SHARED] = True
        node.workerinput["healthchecks_judged"] = str(config.stash[WORKDIR] / "judged.pickle")
        node.workerinput["healthchecks_snapshot"] = str(config.stash[WORKDIR] / "snapshot.pickle")
        selection = config.stash[WORKDIR] / f"selected-{node.gateway.id}.json"
        node.workerinput["healthchecks_selection"] = str(selection)
        self.nodes.append(str(selection))

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected += 1
        if self.on_selected is None or self.collected != len(self.nodes):
            return
        selected: set[str] = set()
        for path in self.nodes:
            with contextlib.suppress(OSError, ValueError):
                selected |= set(json.loads(Path(path).read_text()))
        self.on_selected(node.config, selected)


def report_selection(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: which checks its collected tests judge (for the controller's --fix)."""
    path = getattr(config, "workerinput", {}).get("healthchecks_selection")
    if path:
        Path(path).write_text(json.dumps(sorted(selected_checks(items))))


def hand_over(config: pytest.Config) -> None:
    """Write the files workers read; called after the snapshot, before any test reaches a worker."""
    run = config.stash[RUN]
    if config.stash.get(SHARED, False):
        for name, value in (("judged", run.judged), ("snapshot", run.current.snapshot)):
            (config.stash[WORKDIR] / f"{name}.pickle").write_bytes(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


@overload
def shared(config: pytest.Config, name: Literal["judged"]) -> Judged: ...
@overload
def shared(config: pytest.Config, name: Literal["snapshot"]) -> Snapshot: ...
def shared(config: pytest.Config, name: str) -> Judged | Snapshot:
    """On the controller (or without xdist), the run's own value; on a worker, the controller's, read once."""
    if is_worker(config):
        if path := getattr(config, "workerinput", {}).get(f"healthchecks_{name}"):
            found: Judged | Snapshot = pickle.loads(Path(path).read_bytes())  # the controller's own file
            return found
    elif (run := config.stash.get(RUN, None)) is not None:
        return run.judged if name == "judged" else run.current.snapshot
    pytest.fail(f"agent-healthchecks: no snapshot was taken; run the checks as {command_hint(config)}", pytrace=False)
