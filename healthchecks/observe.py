"""The one way to look: collect a read-only snapshot, then judge it. Everything that looks calls this:
the plugin, the fixers before each phase and after, the benchmark and the tests.

A run over several managers (--source all, or auto finding more than one store) reads the machine once
(snapshot.machine_scan) and judges each manager's records against it: one Observation each, merged into one
MachineObservation whose findings each name their manager."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from . import checks, sources
from .analysis import Analysis
from .results import CheckResult, Finding, Results
from .settings import Settings
from .snapshot import MachineScan, Snapshot, collect, cycles_uncollected, machine_scan
from .summary import Figures, figures


@dataclass(frozen=True)
class Observation:
    """One snapshot and every check's result on it."""

    analysis: Analysis
    results: Results
    name: str = ""  # its manager's name in a run over several (another orchestrator workspace's names its path)

    @property
    def snapshot(self) -> Snapshot:
        return self.analysis.snapshot

    @cached_property
    def figures(self) -> Figures:
        return figures(self.analysis, self.results)

    @property
    def info(self) -> list[Finding]:
        return [f for r in self.results.values() for f in r.info]

    @property
    def manager(self) -> str:
        return self.name or sources.manager_name(self.snapshot.registries.source)

    @property
    def parts(self) -> tuple[Observation, ...]:
        """Each manager's observation: this one alone."""
        return (self,)


@dataclass(frozen=True)
class MachineObservation:
    """Every present manager's observation from one machine scan, judged together: each check's findings of all of
    them (each naming its manager), and the accounted-for check over all their claims at once. Its snapshot and
    analysis are the first manager's (where an output shows one workspace)."""

    parts: tuple[Observation, ...]

    @property
    def analysis(self) -> Analysis:
        return self.parts[0].analysis

    @property
    def snapshot(self) -> Snapshot:
        return self.parts[0].snapshot

    @cached_property
    def claims(self) -> dict[str, checks.Claims]:
        """Each manager's claims on the agent processes (a manager whose records cannot be read claims nothing, and
        says so in its registry_schema finding)."""
        return {p.manager: checks.manager_claims(p.analysis) for p in self.parts
                if p.results[checks.ACCOUNTED_FOR].judged}

    @cached_property
    def session_claims(self) -> dict[str, checks.SessionClaims]:
        """Each readable manager's live sessions its records name."""
        return {p.manager: checks.session_claims(p.analysis) for p in self.parts
                if p.results[checks.ACCOUNTED_FOR].judged}

    @property
    def conflicted(self) -> frozenset[int]:
        """The processes two managers claim: whatever a waiver says, no manager's fix ends them."""
        claimed = [pid for found in self.claims.values() for pid in found]
        return frozenset(pid for pid in claimed if claimed.count(pid) > 1)

    @property
    def conflicted_sessions(self) -> frozenset[tuple[str, str]]:
        """The sessions (server, name) two managers record: no manager's fix kills them or marks their records."""
        claimed = [key for found in self.session_claims.values() for key in found]
        return frozenset(key for key in claimed if claimed.count(key) > 1)

    def part(self, manager: str) -> Observation:
        """One manager's observation, by the name this run gives it."""
        return next(p for p in self.parts if p.manager == manager)

    @cached_property
    def results(self) -> Results:
        merged = {cid: merge({p.manager: p.results[cid] for p in self.parts}) for cid in self.parts[0].results}
        merged[checks.ACCOUNTED_FOR] = self._accounted()
        return merged

    def _accounted(self) -> CheckResult:
        """The accounted-for check over every readable manager's claims at once."""
        if not self.claims:
            return merge({p.manager: p.results[checks.ACCOUNTED_FOR] for p in self.parts})
        found = checks.accounted(self.claims, self.analysis, self.session_claims)
        return CheckResult.judged_from(checks.ACCOUNTED_FOR,
                                       checks.waive(found, self.snapshot.settings.waivers, self.snapshot.taken_at))

    @cached_property
    def figures(self) -> Figures:
        return merged_figures([p.figures for p in self.parts])

    @property
    def info(self) -> list[Finding]:
        return [f for r in self.results.values() for f in r.info]


def merge(by_manager: Mapping[str, CheckResult]) -> CheckResult:
    """One check's results of several managers as one: every finding; an error (a manager's tmux unreachable) stays
    an error; a manager not judged because its records cannot be read is left out when another was judged (its
    registry_schema finding is its one line)."""
    results = list(by_manager.values())
    check = results[0].check
    findings = tuple(f for r in results for f in r.findings)
    errors = [f"{m}: {r.reason}" for m, r in by_manager.items() if r.status == "error"]
    if errors:
        return CheckResult(check, "error", "; ".join(errors), findings)
    if any(r.judged for r in results):
        return CheckResult.judged_from(check, list(findings))
    return CheckResult(check, "skip", "; ".join(f"{m}: {r.reason}" for m, r in by_manager.items()))


def _total(values: list[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def merged_figures(each: list[Figures]) -> Figures:
    """The managers' figures together: their records, sessions and orphans add up; the Claude processes are the
    machine's (each manager saw them all), so they are counted once."""
    total = max(f.claude_total for f in each)
    attached = max((f.claude_attached for f in each if f.claude_attached is not None), default=None)
    orphan = _total([f.claude_orphan for f in each])
    return Figures(
        registry_agents=_total([f.registry_agents for f in each]),
        active_counter=_total([f.active_counter for f in each]),
        active_entries=_total([f.active_entries for f in each]),
        claude_total=total,
        claude_attached=attached,
        claude_orphan=orphan,
        claude_foreign=None if attached is None or orphan is None else max(0, total - attached - orphan),
        agent_sessions=_total([f.agent_sessions for f in each]),
        untracked_sessions=_total([f.untracked_sessions for f in each]),
        ghosts=_total([f.ghosts for f in each]),
    )


def named(results: Results, manager: str) -> Results:
    """Each finding names its manager (one that names its own already, a conflict's, keeps it)."""
    def name(f: Finding) -> Finding:
        return f if f.manager else dataclasses.replace(f, manager=manager)

    return {cid: dataclasses.replace(r, findings=tuple(map(name, r.findings))) if r.findings else r
            for cid, r in results.items()}


@cycles_uncollected()
def judged(snapshot: Snapshot, name: str = "") -> Observation:
    analysis = Analysis(snapshot)
    manager = name or sources.manager_name(snapshot.registries.source)
    return Observation(analysis, named(checks.judge(analysis), manager), name)


def each_store(settings: Settings) -> tuple[Settings, ...]:
    """The settings of every present store of a run over all of them: each its own source, place and options."""
    values = dict(settings.place_options)
    return tuple(dataclasses.replace(settings, source=name, workspace=where, place_options=sources.given(name, values))
                 for name, where in sources.present_stores(settings.workspace, values, settings.more_workspaces))


def observe_machine(each: tuple[Settings, ...], scan: MachineScan | None = None) -> MachineObservation:
    """Every manager's observation from one machine scan (read here unless given)."""
    shared = scan if scan is not None else machine_scan(each[0])
    return MachineObservation(tuple(judged(collect(s, scan=shared), name) for s, name in zip(each, names(each),
                                                                                             strict=True)))


def names(each: tuple[Settings, ...]) -> list[str]:
    """Each store's manager, once: a second orchestrator workspace is named by its path."""
    found: list[str] = []
    for s in each:
        manager = sources.manager_name(s.source)
        found.append(f"{manager} {s.workspace}" if manager in found else manager)
    return found


def observe(settings: Settings) -> Observation:
    """One source's observation (a fix looks again at its own manager this way)."""
    return judged(collect(settings))


def look(settings: Settings) -> Observation | MachineObservation:
    """What a run judges: its source's observation, or under --source all every present store's."""
    if settings.source != sources.ALL:
        return observe(settings)
    each = each_store(settings)
    if len(each) <= 1:  # one store (or none: the workspace's, reported empty), exactly as a run of that source
        return judged(collect(each[0] if each else dataclasses.replace(settings, source="auto")))
    return observe_machine(each)
