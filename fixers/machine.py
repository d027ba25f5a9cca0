"""`--fix` over several managers (a run of --source all): one plan per manager, shown together and confirmed once.

Each manager's plan is made and preflighted with its own settings and writer, under its own fix lock, exactly as a
run of that source alone; what one confirmation covers is every plan as shown. Two managers never share a plan. A
process two managers claim, or a session two record (healthchecks.observe.MachineObservation.conflicted,
conflicted_sessions), is spared by every plan (fixers.plan._claimed_by_two). A claim can also appear after the plan
(a record written meanwhile): so each phase of every manager's plan is re-verified on one machine scan taken for that
phase (one per phase, not one per manager), against its manager's own findings then and every other manager's claims
then; an action that would end a process or a session another manager claims now is refused, naming both. So is
one while a manager whose records were read when the plan was made cannot be read at that moment: its claims then are
unknown, and the absence of a claim is never a reason to act.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from healthchecks import processes
from healthchecks.analysis import Analysis
from healthchecks.observe import MachineObservation, Observation, observe, observe_machine
from healthchecks.settings import Settings
from healthchecks.snapshot import cycles_uncollected
from healthchecks.targets import AgentTarget, ProcessTarget, ServerTarget, SessionTarget

from .apply import Checked, Outcome, act, find_session, of_phase, preflight
from .outcome import Status
from .plan import Action, ActionKey, Options, Phase, Plan, ended_pids, make_plan
from .run import MAX_ROUNDS, FixLockBusy, FixReport, fix_lock, recover, settle, still_wrong


@dataclass
class Share:
    """One manager's part of the fix: the plan confirmed for it, the settings it is carried out with, and the
    preflight made before its first action."""

    name: str
    settings: Settings
    root: Path  # the store's folder: its fix lock
    plan: Plan
    checked: Checked | None = None
    confirmed: frozenset[ActionKey] = frozenset()


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


def sparing(options: Options, seen: MachineObservation) -> Options:
    """The options a plan is made with: what two managers claim in ``seen`` is spared."""
    return dataclasses.replace(options, spared=options.spared | seen.conflicted,
                               spared_sessions=options.spared_sessions | seen.conflicted_sessions)


@cycles_uncollected()
def fix_machine(
    observation: MachineObservation,
    options: Options,
    *,
    dry_run: bool,
    confirm: Callable[[Plan], tuple[bool, str]],
    show: Callable[[list[str]], None],
    report: FixReport,
) -> FixReport:
    """Plan every manager's fix, show them, confirm once, then carry them out phase by phase together, the machine
    read once a phase and once a round."""
    plans = [(part, make_plan(part.analysis, part.results, sparing(options, observation)))
             for part in observation.parts]
    report.plan, report.before = combined(plans), observation.figures
    show(lines(plans))
    if dry_run:
        report.message = "dry run: nothing was changed"
        return report
    if report.plan.actions:
        confirmed, report.message = confirm(report.plan)
        if not confirmed:
            return report
    shares, problems = _ready(plans, options, show)
    each = tuple(p.snapshot.settings for p in observation.parts)
    try:
        with _locks(shares):
            after = _rounds(shares, each, options, report, frozenset(observation.claims)) if shares \
                else observe_machine(each)
    except FixLockBusy as exc:  # another fix works on one of the stores: nothing was done
        report.message = str(exc)
        return report
    report.applied = True
    report.message = "; ".join([m for m in [report.message] if m] + problems) or "nothing to do automatically"
    report.after, report.after_results, report.after_observation = after.figures, after.results, after
    report.remaining = still_wrong(after.results, options.selected)
    return report


def _ready(plans: list[tuple[Observation, Plan]], options: Options, show: Callable[[list[str]], None]
           ) -> tuple[list[Share], list[str]]:
    """Each manager with actions whose plan may start: an interrupted fix's journals finished first (its plan stands
    only if the records they leave plan the same), then its preflight; why each other one does nothing."""
    shares, problems = [], []
    for part, plan in plans:
        if not plan.actions:
            continue
        settings = part.snapshot.settings
        if recovered := recover(settings, part.snapshot.registries.workspace):
            show(recovered)
            again = observe(settings)
            if make_plan(again.analysis, again.results, options).lines() != plan.lines():
                problems.append(f"{part.manager}: its plan changed since it was shown: nothing of it was done")
                continue
        checked = preflight(plan, settings, options, seen=None if recovered else part.snapshot.registries)
        if checked.why:
            problems.append(f"{part.manager}: {checked.why}")
            continue
        root, keys = part.snapshot.registries.workspace, frozenset(a.key for a in plan.actions)
        shares.append(Share(part.manager, settings, root, plan, checked, keys))
    return shares, problems


@contextlib.contextmanager
def _locks(shares: list[Share]) -> Iterator[None]:
    """Every acting manager's fix lock, each store's folder once (Agent Teams and background agents share theirs)."""
    roots = {os.path.realpath(s.root): s.settings.lock_timeout for s in shares}
    with contextlib.ExitStack() as stack:
        for root, timeout in sorted(roots.items()):
            stack.enter_context(fix_lock(Path(root), timeout))
        yield


def _rounds(shares: list[Share], each: tuple[Settings, ...], options: Options, report: FixReport,
            read: frozenset[str]) -> MachineObservation:
    """Up to MAX_ROUNDS rounds over every manager at once; later rounds only retry what was confirmed, planned
    again from the machine as the round left it (what two managers claim then is spared). ``read``: the managers
    whose claims were read when the plan was made."""
    plans = {s.name: s.plan for s in shares}
    for round_no in range(1, MAX_ROUNDS + 1):
        _apply(shares, plans, each, read, options, report.outcomes, first=round_no == 1)
        after = observe_machine(each)
        if round_no == MAX_ROUNDS:
            break
        opts = sparing(options, after)
        plans = {}
        for share in shares:
            part = after.part(share.name)
            again = make_plan(part.analysis, part.results, opts)
            if retry := [a for a in again.actions if a.key in share.confirmed]:
                plans[share.name] = Plan(actions=retry, waived=again.waived)
        if not plans:
            break
    settle(report.outcomes)
    return after


def _apply(shares: list[Share], plans: dict[str, Plan], each: tuple[Settings, ...], read: frozenset[str],
           options: Options, outcomes: list[Outcome], first: bool) -> None:
    """One round: each manager's preflight, then phase by phase one machine scan that every manager's actions of
    that phase are re-verified on (its own findings then, every other manager's claims then)."""
    ready: dict[str, Plan] = {}
    for share in shares:
        plan = plans.get(share.name)
        if plan is None:
            continue
        if why := preflight(plan, share.settings, options, share.checked if first else None).why:
            outcomes += [Outcome(a, Status.REFUSED, why) for a in plan.actions]
        else:
            ready[share.name] = plan
    for phase in Phase:
        todo = {name: actions for name, plan in ready.items() if (actions := of_phase(plan, phase))}
        if not todo:
            continue
        now = observe_machine(each)  # one scan of the machine for every manager's actions of this phase
        for name, actions in todo.items():
            outcomes += _act_now(phase, name, actions, now, read, options)


def _act_now(phase: Phase, manager: str, actions: list[Action[Any]], now: MachineObservation, read: frozenset[str],
             options: Options) -> list[Outcome]:
    """One manager's actions of a phase: refused when another manager claims what they would end now (or its
    claims, read for the plan, cannot be read now), the others verified against the manager's own findings now."""
    outcomes, left = [], []
    for action in actions:
        if why := claimed_elsewhere(action, manager, now, read):
            outcomes.append(Outcome(action, Status.REFUSED, why))
        else:
            left.append(action)
    return outcomes + (act(phase, left, now.part(manager), options) if left else [])


def claimed_elsewhere(action: Action[Any], manager: str, now: MachineObservation, read: frozenset[str]
                      ) -> str | None:
    """Why ``action`` of ``manager``'s plan must not run: a process it would end, or a session it would kill or
    whose record it would mark, is claimed by another manager in the machine as it is now; or another manager whose
    claims were read for the plan (``read``) cannot be read now, so what it claims is unknown. None: no other claim."""
    pids, sessions = _reach(action, now.part(manager).analysis)
    if (pids or sessions) and (unread := sorted(read - now.claims.keys() - {manager})):
        return (f"the records of {unread[0]} cannot be read now (they could when the plan was made): what it claims "
                f"at the moment of action is unknown; never acted on")
    for other, found in now.claims.items():
        if other != manager and (pid := min(pids & found.keys(), default=None)) is not None:
            return (f"pid {pid} is claimed now by {other} ({found[pid]}) too: a conflict between {manager} and "
                    f"{other} seen at the moment of action; never acted on")
    for other, recorded in now.session_claims.items():
        if other != manager and (key := min(sessions & recorded.keys(), default=None)) is not None:
            return (f"session {key[1]} is recorded now by {other} ({recorded[key]}) too: a conflict between "
                    f"{manager} and {other} seen at the moment of action; never acted on")
    return None


def _reach(action: Action[Any], a: Analysis) -> tuple[set[int], set[tuple[str, str]]]:
    """What an action would end as the moment's scan sees it: every process of the trees it signals (its root, a
    pair's children, a session's or server's pane processes), and the sessions (server, name) it kills or whose
    record it marks."""
    target = action.target
    roots = ended_pids([action])
    sessions: set[tuple[str, str]] = set()
    if isinstance(target, ProcessTarget):
        roots |= {c.pid for c in target.carried}
    elif isinstance(target, SessionTarget):
        sessions.add((target.server, target.name))
        if (live := find_session(a, target)) is not None:
            roots |= {r.pid for r in a.tmux.roots(live)}
    elif isinstance(target, ServerTarget):
        sessions |= {(s.server, s.name) for group in a.tmux.sessions.values() for s in group
                     if s.server == target.server}
    elif isinstance(target, AgentTarget):
        sessions |= {(s.server, s.name) for s in a.tmux.sessions.get(target.session, ())}
    return {pid for root in roots for pid in processes.descendants(a.children, root)}, sessions
