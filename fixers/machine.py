"""`--fix` over several managers (a run of --source all): one plan per manager, shown together and confirmed once.

Each manager's plan is made, applied and verified by fixers.run.fix with its own settings, its own writer and its
own fix lock, exactly as a run of that source alone; what one confirmation covers is every plan as shown. Two
managers never share a plan: each one's actions are re-verified against its own records, and a process two managers
claim (healthchecks.observe.MachineObservation.conflicted) is spared by every plan (fixers.plan._claimed_by_two).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from healthchecks.observe import MachineObservation, Observation, observe_machine

from .plan import Options, Plan, make_plan
from .run import FixReport, fix, still_wrong


def combined(plans: list[tuple[Observation, Plan]]) -> Plan:
    """The managers' plans as the one plan a person confirms: each action once, in its manager's order."""
    plan = Plan()
    for _, part in plans:
        plan.actions += part.actions
        plan.manual += part.manual
        plan.held += part.held
        plan.blocked += part.blocked
    return plan


def lines(plans: list[tuple[Observation, Plan]]) -> list[str]:
    """What a person reads: each manager's plan under its name."""
    return [line for observation, plan in plans for line in [f"{observation.manager}:", *plan.lines()]]


def fix_machine(
    observation: MachineObservation,
    options: Options,
    *,
    dry_run: bool,
    confirm: Callable[[Plan], tuple[bool, str]],
    show: Callable[[list[str]], None],
    report: FixReport,
) -> FixReport:
    """Plan every manager's fix, show them, confirm once, then fix each manager; the machine is read again at the end
    from one scan."""
    options = dataclasses.replace(options, spared=options.spared | observation.conflicted,
                                  spared_sessions=options.spared_sessions | observation.conflicted_sessions)
    plans = [(part, make_plan(part.analysis, part.results, options)) for part in observation.parts]
    report.plan, report.before = combined(plans), observation.figures
    show(lines(plans))
    if dry_run:
        report.message = "dry run: nothing was changed"
        return report
    if report.plan.actions:
        confirmed, report.message = confirm(report.plan)
        if not confirmed:
            return report
    messages = [_fix_one(part, plan, options, report) for part, plan in plans if plan.actions]
    after = observe_machine(tuple(p.snapshot.settings for p in observation.parts))
    report.applied = True
    report.message = "; ".join(messages) or "nothing to do automatically"
    report.after, report.after_results, report.after_observation = after.figures, after.results, after
    report.remaining = still_wrong(after.results, options.selected)
    return report


def _fix_one(part: Observation, shown: Plan, options: Options, report: FixReport) -> str:
    """One manager's fix, carried out only when its plan is still the one the person confirmed."""

    def same(plan: Plan) -> tuple[bool, str]:
        if plan.lines() == shown.lines():
            return True, "confirmed once for every manager"
        return False, "its plan changed since it was shown: nothing of it was done"

    done = fix(part, part.snapshot.settings, options, dry_run=False, confirm=same, show=lambda _: None)
    report.outcomes += done.outcomes
    return f"{part.manager}: {done.message}"
