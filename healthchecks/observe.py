"""The one way to look: collect a read-only snapshot, then judge it. Everything that looks calls this:
the plugin, the fixers before each phase and after, the benchmark and the tests."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from . import checks
from .analysis import Analysis
from .results import Finding, Results
from .settings import Settings
from .snapshot import Snapshot, collect, cycles_uncollected
from .summary import Figures, figures


@dataclass(frozen=True)
class Observation:
    """One snapshot and every check's result on it."""

    analysis: Analysis
    results: Results

    @property
    def snapshot(self) -> Snapshot:
        return self.analysis.snapshot

    @cached_property
    def figures(self) -> Figures:
        return figures(self.analysis, self.results)

    @property
    def info(self) -> list[Finding]:
        return [f for r in self.results.values() for f in r.info]


@cycles_uncollected()
def judged(snapshot: Snapshot) -> Observation:
    analysis = Analysis(snapshot)
    return Observation(analysis, checks.judge(analysis))


def observe(settings: Settings) -> Observation:
    return judged(collect(settings))
