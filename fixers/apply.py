"""Carry out a confirmed plan, re-verifying every action at the moment it runs.

The plan was made from a snapshot that may be seconds old. So each phase (processes, sessions,
registry) first takes a fresh snapshot and judges it again; an action runs only if its exact
target (PID + start time, session id + pane processes, agent id) is still a failing finding of
the same check. Anything that changed is skipped and said so; a check that cannot be judged now
(tmux unreachable, registry unreadable) refuses its actions.

Before the first action, every registry write of the plan is made once without writing (read,
edited, serialized, validated) and the workspace's owner is checked: a plan that cannot be carried
out whole is not started.
"""

from __future__ import annotations

import os
import pwd
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from healthchecks import holding, sources
from healthchecks.analysis import Analysis, LiveSession
from healthchecks.checks import GHOST_AGENTS
from healthchecks.observe import Observation, observe
from healthchecks.programs import Role
from healthchecks.records import Records
from healthchecks.results import Results
from healthchecks.settings import Settings
from healthchecks.targets import (
    AgentTarget,
    PaneTarget,
    ProcessTarget,
    ServerTarget,
    SessionTarget,
    Target,
)
from healthchecks.tmux import TmuxServer

from . import backups, effects
from .outcome import OK_STATUSES, Status
from .plan import Action, ActionKind, Options, Phase, Plan, counters_selected, entry_ids, waived_counters
from .writers import Edits
from .writers.by_source import writer_for


@dataclass(frozen=True)
class Outcome:
    action: Action[Any]
    status: Status
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def line(self) -> str:
        return f"{self.status.value:>12}: {self.action.describe()}" + (f" [{self.detail}]" if self.detail else "")


@dataclass(frozen=True)
class Refusal:
    """Why an action is not carried out: skipped (no longer a finding) or refused (cannot be judged now)."""

    status: Status
    detail: str


Targets = dict[str, "set[Target] | Refusal"]  # check -> failing targets, or why it cannot be judged


def failing_targets(results: Results) -> Targets:
    """Per check: the targets of its failing findings now, or why it cannot be judged now."""
    targets: Targets = {}
    for check, result in results.items():
        targets[check] = {f.target for f in result.failing} if result.judged else Refusal(Status.REFUSED, result.reason)
    return targets


def verify(action: Action[Any], targets: Targets, check: str | None = None) -> Refusal | None:
    """None when the action's target is still a failing finding of its check; else why not."""
    check = check or action.check
    found = targets[check]
    if isinstance(found, Refusal):
        return found
    return None if action.target in found else Refusal(Status.SKIPPED, "no longer a finding of " + check)


@dataclass(frozen=True)
class Checked:
    """A plan's preflight: why it must not start (None: it may), and the records its writes were dry-run on."""

    why: str | None
    records: Records | None = None  # None: the plan writes no records, or it was refused before reading them


def preflight(plan: Plan, settings: Settings, options: Options, before: Checked | None = None,
              seen: Records | None = None) -> Checked:
    """Whether this plan may start (nothing is written or signalled here). ``before``: this plan's preflight made
    earlier (before the person was asked); its dry run stands while the records' fingerprint is the same, else it
    is made again on the records as they are now. ``seen``: the records the plan was made from, dry-run on as they
    are while their store is unchanged (else read again)."""
    workspace = settings.workspace
    if why := owner_problem(workspace):
        return Checked(why)
    writes = [a for a in plan.actions if a.kind.records]
    if not writes:
        return Checked(None)
    if before is not None and _stands(before, workspace):
        return before
    if seen is not None and _unchanged(seen, workspace):
        regs = seen
    else:
        regs = holding.load(workspace, settings.source, settings.lock_timeout,  # an orchestrator may be writing
                            settings.place_options)
    writer = writer_for(regs.source)
    if writer is None:
        return Checked(f"{regs.source} records are never written by a fix; nothing was changed")
    marks, prunes = entry_ids(writes)
    edits = replace(_edits(marks, prunes, _counter_files(writes), options, regs.workspace), waived=plan.waived)
    return Checked(writer.check(regs, edits, settings.lock_timeout), regs)


def _stands(before: Checked, workspace: Path) -> bool:
    """Whether a dry run that passed still says what the writes would do now: its records are unchanged."""
    return before.why is None and before.records is not None and _unchanged(before.records, workspace)


def _unchanged(regs: Records, workspace: Path) -> bool:
    """Whether the records' store holds the same bytes as when ``regs`` was read (a file digested then is digested
    again)."""
    return bool(regs.fingerprint) and sources.fingerprint(workspace, regs) == regs.fingerprint


def owner_problem(workspace: Path) -> str | None:
    """Why this user must not write in the workspace at all (one line), or None: the check before any write,
    a journal's recovery included. Root writing another user's workspace would leave files its owner cannot
    change (a root-owned backups folder) and signal processes that are not root's to judge."""
    try:
        owner = os.stat(workspace).st_uid
    except OSError as exc:
        return f"{workspace}: cannot stat the workspace ({exc.strerror})"
    if owner != os.geteuid():
        return (
            f"{workspace} belongs to {_user(owner)}, not to this user ({_user(os.geteuid())}): run the fix as "
            f"{_user(owner)}, so that what it writes stays theirs and it signals only their processes; "
            "nothing was changed"
        )
    return None


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def apply(plan: Plan, settings: Settings, options: Options, outcomes: list[Outcome] | None = None,
          checked: Checked | None = None) -> list[Outcome]:
    """Run the plan's phases in order, appending each outcome to ``outcomes`` as it is known (so an
    interrupted run keeps them); returns that list. ``checked``: the plan's preflight made before it was confirmed
    (its dry run is not made again while the records are the same)."""
    outcomes = [] if outcomes is None else outcomes
    if why := preflight(plan, settings, options, checked).why:
        outcomes += [Outcome(a, Status.REFUSED, why) for a in plan.actions]
        return outcomes
    for phase in Phase:
        if actions := of_phase(plan, phase):
            outcomes += act(phase, actions, observe(settings), options)
    return outcomes


def of_phase(plan: Plan, phase: Phase) -> list[Action[Any]]:
    return [a for a in plan.actions if a.kind.phase is phase]


def act(phase: Phase, actions: list[Action[Any]], now: Observation, options: Options) -> list[Outcome]:
    """One phase's actions, each re-verified against ``now``: the fresh observation taken for this phase."""
    unjudged = [f"{c}: {r.reason}" for c, r in now.results.items() if not r.judged]
    if unjudged:  # tmux unreachable or registry unreadable right now: act on nothing
        return [Outcome(a, Status.REFUSED, unjudged[0]) for a in actions]
    return PHASES[phase](actions, now, options)


def _not_verified(action: Action[Any], why: Refusal, gone: bool) -> Outcome:
    if gone:
        return Outcome(action, Status.ALREADY_GONE)
    return Outcome(action, why.status, why.detail)


def _unverified_process(action: Action[ProcessTarget], why: Refusal) -> Outcome:
    """Say precisely why a planned kill does not happen: gone, PID reused, or no longer an orphan."""
    target = action.target
    if why.status is not Status.REFUSED and (lost := effects.identity_lost(target.pid, target.start_ticks)):
        return Outcome(action, lost.status, lost.detail)
    return _not_verified(action, why, gone=False)


def _processes(actions: list[Action[ProcessTarget]], now: Observation, options: Options) -> list[Outcome]:
    a, targets = now.analysis, failing_targets(now.results)
    outcomes, agents = [], {}
    for action in actions:
        if why := verify(action, targets):
            outcomes.append(_unverified_process(action, why))
        else:
            agents[action] = _agent(action.target, a)
    ended = effects.end_agents(agents, a.snapshot.self_pids, options.term_timeout)
    outcomes += [Outcome(action, ended[action].status, ended[action].detail) for action in agents]
    return outcomes


def _agent(target: ProcessTarget, a: Analysis) -> effects.Agent:
    """The agent a verified target is: its pair's children as the plan saw them, and how its program is ended (by
    the program the verification's own scan recognised it as)."""
    proc = a.snapshot.by_pid.get(target.pid)
    role = proc.program.ending.role if proc is not None and proc.program is not None else Role.ONLY
    return effects.Agent(target.pid, target.start_ticks, tuple((c.pid, c.start_ticks) for c in target.carried), role)


def find_session(a: Analysis, target: SessionTarget) -> LiveSession | None:
    return next((s for s in a.tmux.sessions.get(target.name, []) if s.server == target.server), None)


def _sessions(actions: list[Action[SessionTarget]], now: Observation, options: Options) -> list[Outcome]:
    a, targets = now.analysis, failing_targets(now.results)
    outcomes: list[Outcome] = []
    verified: list[tuple[Action[Any], LiveSession]] = []
    for action in actions:
        session = find_session(a, action.target)
        if why := verify(action, targets):
            outcomes.append(_not_verified(action, why, gone=session is None and why.status is not Status.REFUSED))
        elif session is not None and a.tmux.attached(session) and not options.kill_attached:
            who = ", ".join(a.tmux.clients_of(session.server, session.name)) or f"{a.tmux.attached(session)} client(s)"
            outcomes.append(Outcome(action, Status.REFUSED, f"a person is attached now ({who}); not killed"))
        elif session is not None:
            verified.append((action, session))
    # kill-session alone leaves children alive: end the panes' process trees and groups first, each root proven
    # by the start time the verification snapshot recorded for it (a dead pane has none: its old PID may be a
    # stranger's now, so it is never signalled). kill-session on a session of a group, or one whose window another
    # session links, only takes the session away (tmux 3.3a): the window and its processes stay with the other
    # session, a person's view, so those panes' processes are left alone too.
    kept = {action: a.tmux.shared_windows(s) for action, s in verified}
    roots = [
        ((action, root.pid), root.pid, root.start_ticks)
        for action, s in verified
        for root in a.tmux.roots(s, leave=kept[action])
    ]
    effects.end_trees(roots, a.snapshot.self_pids, options.term_timeout, group=True)
    by_server: dict[str, dict[Action[Any], str]] = defaultdict(dict)  # server -> action -> the verified session's id
    for action, session in verified:
        by_server[session.server][action] = session.id
    servers = {s.label: s for s in a.snapshot.servers}
    for label, ids in by_server.items():
        after, error = effects.kill_sessions(servers[label], set(ids.values()), a.settings.tmux_timeout)
        live = {p.session_id for p in after.panes}
        for action, session_id in ids.items():
            if error:
                outcomes.append(Outcome(action, Status.FAILED, error))
            elif session_id in live:
                outcomes.append(Outcome(action, Status.FAILED, "session still live"))
            elif kept[action]:
                shown = ", ".join(sorted(a.tmux.sharing(dict(verified)[action])))
                detail = f"session killed; its windows {', '.join(sorted(kept[action]))} stay with {shown}, running"
                outcomes.append(Outcome(action, Status.DONE, detail))
            else:
                outcomes.append(Outcome(action, Status.DONE, "panes' processes ended, session killed"))
    return outcomes


def _pane_now(a: Analysis, target: PaneTarget) -> tuple[TmuxServer, ProcessTarget | None] | Refusal:
    """The pane's server as the verification snapshot saw it, and the pane's process proven by the start time the
    plan recorded (a dead pane has none); why not, when the pane now holds another process."""
    server = next((s for s in a.snapshot.servers if s.label == target.server), None)
    pane = next((p for p in server.panes if p.pane_id == target.pane_id), None) if server else None
    if server is None or server.server_pid != target.server_pid:
        return Refusal(Status.SKIPPED, f"tmux server {target.server} is gone or restarted; not touched")
    if pane is None:
        return Refusal(Status.ALREADY_GONE, "")
    if pane.dead:
        return server, None
    proc = a.snapshot.by_pid.get(pane.pid)
    if target.root is None or proc is None or ProcessTarget(proc.pid, proc.start_ticks) != target.root:
        return Refusal(Status.SKIPPED, f"pane {target.pane_id} now runs another process; not touched")
    return server, target.root


def _panes(actions: list[Action[PaneTarget]], now: Observation, options: Options) -> list[Outcome]:
    """End each verified pane's process tree (its group and session too), then kill the pane itself."""
    a, targets = now.analysis, failing_targets(now.results)
    outcomes: list[Outcome] = []
    verified: list[tuple[Action[Any], TmuxServer, ProcessTarget | None]] = []
    for action in actions:
        place = _pane_now(a, action.target)
        if (why := verify(action, targets)) or isinstance(place, Refusal):
            refusal = why or place
            assert isinstance(refusal, Refusal)
            outcomes.append(Outcome(action, refusal.status, refusal.detail))
        elif not options.kill_attached and (who := a.tmux.attached_to(action.target)):
            outcomes.append(Outcome(action, Status.REFUSED, f"a person is attached now ({who}); not killed"))
        else:
            verified.append((action, *place))
    roots = [(action, root.pid, root.start_ticks) for action, _, root in verified if root is not None]
    effects.end_trees(roots, a.snapshot.self_pids, options.term_timeout, group=True)
    for action, server, root in verified:
        pane = action.target.pane_id
        why_not = effects.kill_panes(server, {pane: root.pid if root else None}, a.settings.tmux_timeout)[pane]
        outcomes.append(Outcome(action, Status.FAILED, why_not) if why_not else
                        Outcome(action, Status.DONE, "its process tree ended, pane killed"))
    return outcomes


def _servers(actions: list[Action[ServerTarget]], now: Observation, options: Options) -> list[Outcome]:
    """A whole private server: verified as leaked now (every pane a dead team's teammate or dead), each pane's
    process ended by the start time the verification saw, then kill-server if it holds nothing else."""
    a, targets = now.analysis, failing_targets(now.results)
    outcomes: list[Outcome] = []
    for action in actions:
        target = action.target
        if why := verify(action, targets):
            outcomes.append(Outcome(action, why.status, why.detail))
            continue
        if not options.kill_attached and (who := a.tmux.attached_to(target)):
            outcomes.append(Outcome(action, Status.REFUSED, f"a person is attached now ({who}); not killed"))
            continue
        server = next(s for s in a.snapshot.servers if s.label == target.server)
        failing = targets[action.check]
        assert not isinstance(failing, Refusal)  # verify() said so
        # the verification's own view of its panes
        seen = next(t for t in failing if isinstance(t, ServerTarget) and t == target)
        roots = [(p.pane_id, p.root.pid, p.root.start_ticks) for p in seen.panes if p.root is not None]
        effects.end_trees(roots, a.snapshot.self_pids, options.term_timeout, group=True)
        why_not = effects.kill_server(server, {p.pane_id for p in seen.panes}, a.settings.tmux_timeout)
        outcomes.append(Outcome(action, Status.FAILED, why_not) if why_not else
                        Outcome(action, Status.DONE, f"{len(roots)} pane process(es) ended, server killed"))
    return outcomes


def _counter_files(actions: list[Action[Any]]) -> frozenset[str]:
    return frozenset(a.target.path for a in actions if a.kind is ActionKind.SET_COUNTERS)


def _now() -> str:
    return datetime.now().isoformat(timespec="microseconds")


def _edits(
    marks: set[str], prunes: set[str], counter_files: frozenset[str], options: Options, workspace: Path
) -> Edits:
    archive = workspace / "registry" / "archive" / f"pruned-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    return Edits(frozenset(marks), frozenset(prunes), counter_files, counters_selected(options), _now(), archive)


def _records(actions: list[Action[Any]], now: Observation, options: Options) -> list[Outcome]:
    """Every verified entry change and counter fix, through the records' own writer (fixers.writers); a counter
    waived now is left as it is (the writer is told which)."""
    a, targets, waived = now.analysis, failing_targets(now.results), waived_counters(now.results)
    outcomes: list[Outcome] = []
    marks: set[str] = set()
    prunes: set[str] = set()
    archives: set[str] = set()
    for action in actions:
        if action.kind is ActionKind.ARCHIVE_SCOPE:
            if why := verify(action, targets):
                outcomes.append(Outcome(action, why.status, why.detail))
            else:
                archives.add(action.target.path)
        elif action.kind.entry:
            agent_id = action.target.id
            if why := _verify_entry(action, a, targets):
                outcomes.append(_not_verified(action, why, gone=agent_id not in a.records.index))
            else:
                (prunes if action.kind is ActionKind.PRUNE_ENTRY else marks).add(agent_id)
    regs = a.snapshot.registries
    writer = writer_for(regs.source)
    assert writer is not None  # the preflight refused a plan that writes a store nobody may write
    edits = replace(_edits(marks, prunes, _counter_files(actions), options, regs.workspace),
                    archives=frozenset(archives), waived=waived)
    written = writer.write(regs, edits, a.settings.lock_timeout)
    backups.prune(regs.workspace, options.keep_backups, options.backup_days)
    for action in actions:  # one lookup per action in indexes made once for the phase (edits.ids)
        key = action.target.id if action.kind.entry else action.target.path
        if action.kind.entry and key not in edits.ids:
            continue
        if action.kind is ActionKind.ARCHIVE_SCOPE and key not in archives:
            continue
        if key in written.failed:
            outcomes.append(Outcome(action, Status.FAILED, written.failed[key]))
        elif key in written.done:
            outcomes.append(Outcome(action, Status.DONE, written.done[key]))
        else:
            outcomes.append(Outcome(action, Status.SKIPPED, written.left))
    return outcomes


def _verify_entry(action: Action[AgentTarget], a: Analysis, targets: Targets) -> Refusal | None:
    """A ghost must still be a ghost; a prune candidate must still have no live session. A mark is left, and says
    why, when a session of its agent's name lives on a server this run does not check (another world's, a person's)."""
    ghost = verify(action, targets, GHOST_AGENTS)
    if ghost is None or ghost.status is Status.REFUSED:
        return ghost
    if action.kind is ActionKind.PRUNE_ENTRY:
        agent = a.records.agent(action.target.id)
        live = agent is not None and (agent.session in a.tmux.sessions or agent.session in a.tmux.other_sessions)
        if agent is not None and agent.terminal and not live:
            return None
        return Refusal(Status.SKIPPED, "its session is live again, or it is active but not a ghost")
    if elsewhere := a.tmux.other_sessions.get(action.target.session):  # a session of that name: the agent may be there
        return Refusal(Status.SKIPPED, f"session {action.target.session} lives on tmux server {elsewhere[0].server}, "
                                       "which is not checked here; left alone")
    return ghost


def _worktrees(actions: list[Action[Any]], now: Observation, options: Options) -> list[Outcome]:
    """Each leaked worktree still a finding now, removed by the effect, which reads its lock again and removes it
    only when nothing can be lost."""
    targets, outcomes = failing_targets(now.results), []
    for action in actions:
        if why := verify(action, targets):
            outcomes.append(Outcome(action, why.status, why.detail))
            continue
        t, timeout = action.target, now.analysis.settings.lock_timeout
        ended = effects.remove_worktree(t.repo, t.path, t.pid, t.start_ticks, t.branch, timeout)
        outcomes.append(Outcome(action, ended.status, ended.detail))
    return outcomes


# The phase of each ActionKind (ActionKind.phase), by what carries it out; they run in Phase's order.
PHASES: dict[Phase, Callable[[list[Action[Any]], Observation, Options], list[Outcome]]] = {
    Phase.PROCESSES: _processes,
    Phase.PANES: _panes,
    Phase.SESSIONS: _sessions,
    Phase.SERVERS: _servers,
    Phase.RECORDS: _records,
    Phase.WORKTREES: _worktrees,
}
