"""The controller → worker hand-off under pytest-xdist: the machine is read and judged once, on the controller,
and every worker receives the judged results, and the snapshot only when one of the run's tests names the
`hc_snapshot` fixture (the checks' own tests never do: pickling 3,000 processes and 20,000 records for nobody cost
the controller 135 ms of CPU before any test could start, at 1,000 sessions)."""

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
SNAPSHOT_FIXTURE = "hc_snapshot"  # plugin.py's fixture: a worker's tests that name it get the snapshot


class XdistHooks:
    """Registered on the controller only when pytest-xdist is active. Each worker writes what its collected tests
    (after -k, -m) need to a file: the checks they judge and whether any names the snapshot. Once every worker has,
    and before any test is handed out, the fix (under --fix) runs on the controller with the union of the checks,
    the workers then judging the state it left; and the snapshot is handed over if a test needs it."""

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
        if self.collected != len(self.nodes):
            return
        selected: set[str] = set()
        snapshot = False
        for path in self.nodes:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                found = json.loads(Path(path).read_text())
                selected |= set(found["checks"])
                snapshot = snapshot or found["snapshot"] is True
        if self.on_selected is not None:
            self.on_selected(node.config, selected)
        if snapshot:
            hand_over(node.config, "snapshot")


def report_selection(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker: which checks its collected tests judge (for the controller's --fix), and whether any of them
    names the snapshot (its fixture closure, as collected)."""
    path = getattr(config, "workerinput", {}).get("healthchecks_selection")
    if path:
        snapshot = any(SNAPSHOT_FIXTURE in getattr(item, "fixturenames", ()) for item in items)
        Path(path).write_text(json.dumps({"checks": sorted(selected_checks(items)), "snapshot": snapshot}))


def hand_over(config: pytest.Config, name: Literal["judged", "snapshot"] = "judged") -> None:
    """Write a file workers read: the judged results after the snapshot (and after a fix), the snapshot once every
    worker has collected and one needs it; always before any test reaches a worker."""
    run = config.stash[RUN]
    if config.stash.get(SHARED, False):
        value = run.judged if name == "judged" else run.current.snapshot
        (config.stash[WORKDIR] / f"{name}.pickle").write_bytes(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))


@overload
def shared(config: pytest.Config, name: Literal["judged"]) -> Judged: ...
@overload
def shared(config: pytest.Config, name: Literal["snapshot"]) -> Snapshot: ...
def shared(config: pytest.Config, name: str) -> Judged | Snapshot:
    """On the controller (or without xdist), the run's own value; on a worker, the controller's, read once."""
    if is_worker(config):
        if path := getattr(config, "workerinput", {}).get(f"healthchecks_{name}"):
            try:
                found: Judged | Snapshot = pickle.loads(Path(path).read_bytes())  # the controller's own file
            except FileNotFoundError:
                if name != "snapshot":  # the judged results are always written before any test
                    raise
                pytest.fail(f"agent-healthchecks: under pytest-xdist a test gets the snapshot by naming the "
                            f"`{SNAPSHOT_FIXTURE}` fixture among its arguments (or its fixtures')", pytrace=False)
            return found
    elif (run := config.stash.get(RUN, None)) is not None:
        return run.judged if name == "judged" else run.current.snapshot
    pytest.fail(f"agent-healthchecks: no snapshot was taken; run the checks as {command_hint(config)}", pytrace=False)
