"""`--fix`: plan → check the plan can be carried out → confirm once → act with re-verification →
collect and judge again (at most 3 rounds), holding the workspace's fix lock throughout."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from healthchecks.observe import MachineObservation, Observation, observe
from healthchecks.results import Finding, Results
from healthchecks.settings import Settings
from healthchecks.snapshot import cycles_uncollected
from healthchecks.summary import Figures

from .apply import Checked, Outcome, apply, owner_problem, preflight
from .outcome import Status
from .plan import Options, Plan, make_plan
from .writers.by_source import pending, recover_all

MAX_ROUNDS = 3


@dataclass(frozen=True)
class Unresolved:
    """What is still wrong after the fix: a failing finding of a check, or a check that could not be judged."""

    check: str
    finding: Finding | None = None  # None: the check was not judged
    reason: str = ""  # why it was not judged

    def line(self) -> str:
        if self.finding is None:
            return f"{self.check}: not judged ({self.reason})"
        return f"{self.check}: {self.finding.line()}"


@dataclass
class FixReport:
    plan: Plan
    message: str = ""
    applied: bool = False
    interrupted: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    before: Figures | None = None
    after: Figures | None = None
    after_results: Results | None = None
    # the machine looked at again once the fix was done (every manager's, after a fix over several)
    after_observation: Observation | MachineObservation | None = None
    remaining: list[Unresolved] = field(default_factory=list)

    @property
    def done(self) -> int:
        """How many planned actions were carried out: once each, however many rounds it took."""
        return len({o.action.key for o in self.outcomes if o.status is Status.DONE})

    @property
    def ok(self) -> bool:
        """Every confirmed action succeeded (or had nothing left to do) and every check passes afterwards."""
        return self.applied and not self.interrupted and not self.remaining and all(o.ok for o in self.outcomes)


class FixLockBusy(RuntimeError):
    """Another --fix holds this workspace."""


@contextlib.contextmanager
def fix_lock(workspace: Path, timeout: float) -> Iterator[None]:
    """One --fix at a time per workspace: flock on the workspace folder itself (no file is created).

    The orchestrator locks its registry files, never the folder, so this lock never blocks it.
    """
    fd = os.open(workspace, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FixLockBusy(
                        f"another agent-healthchecks --fix is working on {workspace} (waited {timeout:g}s); "
                        "nothing was changed"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def still_wrong(results: Results, selected: frozenset[str] | None = None) -> list[Unresolved]:
    wrong = []
    for check_id, result in results.items():
        if selected is not None and check_id not in selected:
            continue
        if not result.judged:
            wrong.append(Unresolved(check_id, reason=result.reason))
        else:
            wrong += [Unresolved(check_id, f) for f in result.failing]
    return wrong


@cycles_uncollected()
def fix(
    observation: Observation,
    settings: Settings,
    options: Options,
    *,
    dry_run: bool,
    confirm: Callable[[Plan], tuple[bool, str]],
    show: Callable[[list[str]], None],
    report: FixReport | None = None,
) -> FixReport:
    """Run the whole remediation; ``show`` prints the plan before anything is asked or done.

    Pass ``report`` to keep what was done if the run is interrupted (Ctrl-C): it is filled as it goes.
    """
    if report is None:
        report = FixReport(Plan())
    root = observation.snapshot.registries.workspace  # the store's directory (a workspace, Claude's config dir)
    if not dry_run and (recovered := recover(settings, root)):
        show(recovered)
        observation = observe(settings)
    results = observation.results
    plan = make_plan(observation.analysis, results, options)
    report.plan, report.before = plan, observation.figures
    show(plan.lines())
    if dry_run:
        report.message = "dry run: nothing was changed"
        return report
    if not plan.actions:
        report.message = "nothing to do automatically"
        report.applied, report.after, report.remaining = True, report.before, still_wrong(results, options.selected)
        report.after_results, report.after_observation = results, observation
        return report
    checked = preflight(plan, settings, options, seen=observation.snapshot.registries)
    if checked.why:
        report.message = checked.why
        return report
    confirmed, report.message = confirm(plan)
    if not confirmed:
        return report
    try:
        with fix_lock(root, settings.lock_timeout):
            _rounds(report, plan, settings, options, checked)
    except FixLockBusy as exc:
        report.message = str(exc)
    return report


def recover(settings: Settings, root: Path) -> list[str]:
    """Finish what an interrupted fix left: a torn registry gets its old bytes back from the journal."""
    if not pending(root):
        return []
    if why := owner_problem(settings.workspace):  # the owner check comes before any write, this one included
        return [f"the journals of an interrupted fix are left as they are: {why}"]
    try:
        with fix_lock(root, settings.lock_timeout):
            return recover_all(root, settings.lock_timeout)
    except FixLockBusy as exc:
        return [str(exc)]


def _rounds(report: FixReport, plan: Plan, settings: Settings, options: Options, checked: Checked) -> None:
    """One dry run a round: the first round's is the one made before the person was asked (made again only if the
    records changed meanwhile); each later round's plan is a new one, dry-run by its apply."""
    confirmed_keys = {a.key for a in plan.actions}
    report.applied = True
    round_plan = plan
    for round_no in range(1, MAX_ROUNDS + 1):
        apply(round_plan, settings, options, report.outcomes, checked if round_plan is plan else None)
        after = observe(settings)
        if round_no == MAX_ROUNDS:
            break
        # Later rounds only retry what was confirmed; anything new is reported, never acted on.
        again = make_plan(after.analysis, after.results, options)
        retry = [a for a in again.actions if a.key in confirmed_keys]
        if not retry:
            break
        round_plan = Plan(actions=retry, waived=again.waived)
    report.after = after.figures
    report.after_results, report.after_observation = after.results, after
    report.remaining = still_wrong(after.results, options.selected)
    settle(report.outcomes)


def settle(outcomes: list[Outcome]) -> None:
    """An outcome that failed in one round and was done in a later one counts as done."""
    finished = {o.action.key for o in outcomes if o.ok}
    outcomes[:] = [o for o in outcomes if o.ok or o.action.key not in finished]
