"""`--fix`: plan → confirm once → act with re-verification → collect and judge again (at most 3 rounds)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from healthchecks import checks
from healthchecks.analysis import Analysis
from healthchecks.settings import Settings
from healthchecks.snapshot import collect
from healthchecks.summary import Figures, figures

from .apply import Options, Outcome, apply
from .plan import Plan, make_plan

MAX_ROUNDS = 3


@dataclass
class FixReport:
    plan: Plan
    message: str = ""
    applied: bool = False
    outcomes: list[Outcome] = field(default_factory=list)
    before: Figures | None = None
    after: Figures | None = None
    after_results: dict | None = None
    remaining: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.applied and not self.remaining


def still_wrong(results: dict) -> list[str]:
    lines = []
    for check_id, result in results.items():
        if isinstance(result, tuple):
            lines.append(f"{check_id}: not judged ({result[1]})")
        else:
            lines += [f"{check_id}: {f.line()}" for f in result if f.severity == "fail"]
    return lines


def fix(
    analysis: Analysis,
    results: dict,
    settings: Settings,
    options: Options,
    *,
    dry_run: bool,
    confirm: Callable[[Plan], tuple[bool, str]],
    show: Callable[[list[str]], None],
) -> FixReport:
    """Run the whole remediation; ``show`` prints the plan before anything is asked or done."""
    plan = make_plan(analysis, results, options.prune)
    report = FixReport(plan, before=figures(analysis, results))
    show(plan.lines())
    if dry_run:
        report.message = "dry run: nothing was changed"
        return report
    if not plan.actions:
        report.message = "nothing to do automatically"
        report.applied, report.after, report.remaining = True, report.before, still_wrong(results)
        report.after_results = results
        return report
    confirmed, report.message = confirm(plan)
    if not confirmed:
        return report
    confirmed_keys = {a.key for a in plan.actions}
    report.applied = True
    round_plan = plan
    for round_no in range(1, MAX_ROUNDS + 1):
        report.outcomes += apply(round_plan, settings, options)
        analysis = Analysis(collect(settings))
        results = checks.judge(analysis)
        if round_no == MAX_ROUNDS:
            break
        # Later rounds only retry what was confirmed; anything new is reported, never acted on.
        retry = [a for a in make_plan(analysis, results, options.prune).actions if a.key in confirmed_keys]
        if not retry:
            break
        round_plan = Plan(actions=retry)
    report.after = figures(analysis, results)
    report.after_results = results
    report.remaining = still_wrong(results)
    return report
