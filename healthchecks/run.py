"""One health-check run as the plugin keeps it: what was observed, what the run started, what the fix did."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # types only: pytest loads this module in every run, a health-check run imports the rest
    from fixers.run import FixReport  # (this package never imports fixers)

    from .observe import MachineObservation, Observation
    from .results import Finding, Results
    from .snapshot import Snapshot
    from .summary import Figures
    from .testing.demo import DemoWorld


@dataclass(frozen=True)
class Judged:
    """What a test needs: every check's result, and the id of the one snapshot they were judged on."""

    results: Results
    snapshot_id: str


MACHINE = "machine"  # the workspace the outputs name for a run over several managers: the machine's, not one store's


@dataclass
class Run:
    observation: Observation | MachineObservation  # several managers' (--source all) from one machine scan
    world: DemoWorld | None = None  # the demo world, torn down at the end of the run
    fix_report: FixReport | None = None  # under --fix or --dry-run

    @property
    def snapshot(self) -> Snapshot:
        return self.observation.snapshot

    @property
    def workspace(self) -> str:
        """The workspace the metrics and the trend name: its store's folder, or MACHINE for a run over several
        managers (their figures are the sum of all; each manager's own is in the findings JSON's settings)."""
        return MACHINE if len(self.observation.parts) > 1 else str(self.snapshot.registries.workspace)

    @property
    def results(self) -> Results:
        return self.observation.results

    @property
    def figures(self) -> Figures:
        return self.observation.figures

    @property
    def info(self) -> list[Finding]:
        return self.observation.info

    @property
    def final(self) -> tuple[Results, Figures]:
        """The state the run leaves the machine in: after the fix when one was applied."""
        fixed = self.fix_report
        if fixed is not None and fixed.after_results is not None and fixed.after is not None:  # (set together)
            return fixed.after_results, fixed.after
        return self.results, self.figures

    @property
    def current(self) -> Observation | MachineObservation:
        """What the tests judge: the machine after the fix when one was applied (it runs before the tests), so every
        output, the tests' outcomes included, agrees with the exit status; else the machine as found."""
        fixed = self.fix_report
        after = fixed.after_observation if fixed is not None else None
        return after if after is not None else self.observation

    @property
    def snapshot_id(self) -> str:
        """The same in every xdist worker: they all judge the controller's one snapshot."""
        return f"{self.current.snapshot.taken_at:.6f}"

    @property
    def judged(self) -> Judged:
        return Judged(self.current.results, self.snapshot_id)


RUN = pytest.StashKey[Run]()
FOUND: pytest.StashKey[list[Finding]] = pytest.StashKey()  # a check test's findings, for its row of the HTML report
WORKDIR = pytest.StashKey[Path]()  # private temporary directory: the files for xdist workers, the demo world


def selected_checks(items: list[pytest.Item]) -> set[str]:
    """The checks of the tests this run will run: `-k`, `-m` and node ids limit the fix to those."""
    return {m.args[0] for item in items for m in item.iter_markers("check") if m.args}


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def get_run(config: pytest.Config) -> Run | None:
    return None if is_worker(config) else config.stash.get(RUN, None)


PACKAGE_DIR = Path(__file__).resolve().parent


def command_hint(config: pytest.Config, extra: str = "") -> str:
    """How to run the checks from where this run was started: by path in a checkout, by package elsewhere."""
    by_path = (config.invocation_params.dir / "healthchecks").resolve() == PACKAGE_DIR
    return f"`pytest healthchecks{extra}`" if by_path else f"`pytest --pyargs healthchecks{extra}`"


def targets_healthchecks(config: pytest.Config) -> bool:
    """Whether this run collects the health checks (and not only, say, the project's own tests)."""
    if config.getoption("healthchecks_demo"):
        return True
    for arg in config.args:
        target = arg.split("::")[0]
        spec = _find_spec(target) if config.option.pyargs else None
        path = Path(spec.origin).parent if spec and spec.origin else config.invocation_params.dir / target
        path = path.resolve()
        if path == PACKAGE_DIR or PACKAGE_DIR in path.parents or path in PACKAGE_DIR.parents:
            return True
    return False


def _find_spec(name: str) -> ModuleSpec | None:
    try:
        return find_spec(name)
    except (ImportError, ValueError):
        return None
