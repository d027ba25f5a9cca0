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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from healthchecks import holding
from healthchecks.analysis import Analysis, LiveSession
from healthchecks.observe import observe
from healthchecks.registry import (
    Kind,
    Registries,
    RegistryError,
    check_contained,
    expected_counters,
    records,
    status_class,
)
from healthchecks.results import Results
from healthchecks.settings import Settings
from healthchecks.sources.sqlite_state import RELPATH
from healthchecks.targets import AgentTarget, FileTarget, ProcessTarget, SessionTarget

from . import effects, sqlite_write
from .plan import Action, Plan, PlanOptions, counters_selected, entry_ids
from .registry_write import LockTimeout, append_archive, dry_run, rewrite

OK_STATUSES = frozenset({"done", "already gone", "skipped"})  # anything else means the fix did not succeed


@dataclass(frozen=True)
class Options:
    prune: bool = False
    lock_timeout: float = 10.0
    term_timeout: float = 5.0
    selected: frozenset[str] | None = None  # the checks this run selected; None: all
    kill_attached: bool = False
    allow_server_down: bool = False
    tmux_timeout: float = 5.0

    @property
    def plan(self) -> PlanOptions:
        return PlanOptions(self.prune, self.selected, self.kill_attached, self.allow_server_down)


@dataclass(frozen=True)
class Outcome:
    action: Action
    status: str  # "done", "already gone", "skipped", "refused", "failed", "not done"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    def line(self) -> str:
        return f"{self.status:>12}: {self.action.describe()}" + (f" [{self.detail}]" if self.detail else "")


Targets = dict[str, "set | str"]  # check -> failing targets, or why it cannot be judged


def failing_targets(results: Results) -> Targets:
    """Per check: the targets of its failing findings now, or why it cannot be judged now."""
    targets: Targets = {}
    for check, result in results.items():
        targets[check] = {f.target for f in result.failing} if result.judged else f"refused: {result.reason}"
    return targets


def verify(action: Action, targets: Targets, check: str | None = None) -> str | None:
    """None when the action's target is still a failing finding of its check; else why not."""
    check = check or action.check
    found = targets[check]
    if isinstance(found, str):
        return found
    return None if action.target in found else "skipped: no longer a finding of " + check


def preflight(plan: Plan, settings: Settings, options: Options) -> str | None:
    """Why this plan must not start at all (one line), or None. Nothing is written or signalled here."""
    workspace = settings.workspace
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
    writes = [a for a in plan.actions if a.kind in ("mark_terminated", "prune_entry", "set_counters")]
    if not writes:
        return None
    regs = holding.load(workspace, settings.source, settings.lock_timeout)  # an orchestrator may be writing
    if regs.source == "sqlite":
        why = sqlite_write.writable(workspace)
        return f"{why}; nothing was changed" if why else None
    if not regs.ok:
        return f"registry unusable: {regs.all_errors[0]}"
    for place in ("backups", "archive"):  # where the writes' copies go must be inside the workspace too
        try:
            check_contained(workspace, workspace / "registry" / place / "x")
        except RegistryError as exc:
            return f"{str(exc).splitlines()[0]}; nothing was changed"
    marks, prunes = entry_ids(writes)
    now = _now()
    for path, kind in _files_to_write(regs, marks | prunes, _counter_files(writes)):
        edit, _, _ = _editor(kind, marks, prunes, now, counters_selected(options.plan))
        try:
            with holding.held([path], min(settings.lock_timeout, holding.TIMEOUT)):  # not half-written
                dry_run(path, kind, edit, workspace=workspace)
        except (RegistryError, OSError) as exc:
            return f"{str(exc).splitlines()[0]}; nothing was changed"
    return None


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def apply(plan: Plan, settings: Settings, options: Options, outcomes: list[Outcome] | None = None) -> list[Outcome]:
    """Run the plan's phases in order, appending each outcome to ``outcomes`` as it is known (so an
    interrupted run keeps them); returns that list."""
    outcomes = [] if outcomes is None else outcomes
    phases = (
        (("kill_process",), _processes),
        (("kill_session",), _sessions),
        (("mark_terminated", "prune_entry", "set_counters"), _registry),
    )
    if why := preflight(plan, settings, options):
        outcomes += [Outcome(a, "refused", why) for a in plan.actions]
        return outcomes
    for kinds, fn in phases:
        actions = [a for a in plan.actions if a.kind in kinds]
        if not actions:
            continue
        now = observe(settings)
        unjudged = [f"{c}: {r.reason}" for c, r in now.results.items() if not r.judged]
        if unjudged:  # tmux unreachable or registry unreadable right now: act on nothing
            outcomes += [Outcome(a, "refused", unjudged[0]) for a in actions]
        else:
            outcomes += fn(actions, now.analysis, failing_targets(now.results), options)
    return outcomes


def _not_verified(action: Action, why: str, gone: bool) -> Outcome:
    if gone:
        return Outcome(action, "already gone")
    status, _, detail = why.partition(": ")
    return Outcome(action, status, detail)


def _unverified_process(action: Action, why: str) -> Outcome:
    """Say precisely why a planned kill does not happen: gone, PID reused, or no longer an orphan."""
    target = action.target
    assert isinstance(target, ProcessTarget)
    if not why.startswith("refused") and (lost := effects.identity_lost(target.pid, target.start_ticks)):
        return Outcome(action, lost.status, lost.detail)
    return _not_verified(action, why, gone=False)


def _processes(actions: list[Action], a: Analysis, targets: Targets, options: Options) -> list[Outcome]:
    outcomes, roots = [], []
    for action in actions:
        if why := verify(action, targets):
            outcomes.append(_unverified_process(action, why))
        else:
            assert isinstance(action.target, ProcessTarget)
            roots.append((action, action.target.pid, action.target.start_ticks))
    ended = effects.end_trees(roots, a.snapshot.self_pids, options.term_timeout)
    outcomes += [Outcome(action, ended[action].status, ended[action].detail) for action, _, _ in roots]
    return outcomes


def _find(a: Analysis, target: SessionTarget) -> LiveSession | None:
    return next((s for s in a.sessions.get(target.name, []) if s.server == target.server), None)


def _sessions(actions: list[Action], a: Analysis, targets: Targets, options: Options) -> list[Outcome]:
    outcomes: list[Outcome] = []
    verified: list[tuple[Action, LiveSession]] = []
    for action in actions:
        target = action.target
        assert isinstance(target, SessionTarget)
        session = _find(a, target)
        if why := verify(action, targets):
            outcomes.append(_not_verified(action, why, gone=session is None and not why.startswith("refused")))
        elif session is not None and a.attached(session) and not options.kill_attached:
            who = ", ".join(a.clients_of(session.server, session.name)) or f"{a.attached(session)} client(s)"
            outcomes.append(Outcome(action, "refused", f"a person is attached now ({who}); not killed"))
        elif session is not None:
            verified.append((action, session))
    # kill-session alone leaves children alive: end the panes' process trees and groups first, each root proven
    # by the start time the verification snapshot recorded for it (a dead pane has none: its old PID may be a
    # stranger's now, so it is never signalled). kill-session on a session of a group, or one whose window another
    # session links, only takes the session away (tmux 3.3a): the window and its processes stay with the other
    # session, a person's view, so those panes' processes are left alone too.
    kept = {action: a.shared_windows(s) for action, s in verified}
    roots = [
        ((action, root.pid), root.pid, root.start_ticks)
        for action, s in verified
        for root in a.roots(s, leave=kept[action])
    ]
    effects.end_trees(roots, a.snapshot.self_pids, options.term_timeout, group=True)
    by_server: dict[str, dict[Action, str]] = defaultdict(dict)  # server -> action -> the verified session's id
    for action, session in verified:
        by_server[session.server][action] = session.id
    servers = {s.label: s for s in a.snapshot.servers}
    for label, ids in by_server.items():
        after, error = effects.kill_sessions(servers[label], set(ids.values()), options.tmux_timeout)
        live = {p.session_id for p in after.panes}
        for action, session_id in ids.items():
            if error:
                outcomes.append(Outcome(action, "failed", error))
            elif session_id in live:
                outcomes.append(Outcome(action, "failed", "session still live"))
            elif kept[action]:
                shown = ", ".join(sorted(a.sharing(dict(verified)[action])))
                detail = f"session killed; its windows {', '.join(sorted(kept[action]))} stay with {shown}, running"
                outcomes.append(Outcome(action, "done", detail))
            else:
                outcomes.append(Outcome(action, "done", "panes' processes ended, session killed"))
    return outcomes


def _counter_files(actions: list[Action]) -> set[str]:
    return {a.target.path for a in actions if a.kind == "set_counters" and isinstance(a.target, FileTarget)}


def _files_to_write(regs: Registries, ids: set[str], counter_files: set[str]) -> list[tuple[Path, Kind]]:
    return [
        (f.path, f.kind)
        for f in regs.files
        if {r.id for r in f.agents} & ids or str(f.path) in counter_files
    ]


def _now() -> str:
    return datetime.now().isoformat(timespec="microseconds")


def _registry(actions: list[Action], a: Analysis, targets: Targets, options: Options) -> list[Outcome]:
    """Every entry change and counter fix, one locked write per registry file."""
    outcomes: list[Outcome] = []
    marks: set[str] = set()
    prunes: set[str] = set()
    for action in actions:
        if action.kind == "set_counters":
            continue
        assert isinstance(action.target, AgentTarget)
        agent_id = action.target.id
        why = _verify_entry(action, a, targets)
        if why:
            outcomes.append(_not_verified(action, why, gone=agent_id not in a.records))
        else:
            (prunes if action.kind == "prune_entry" else marks).add(agent_id)
    regs = a.snapshot.registries
    now = _now()
    archive = regs.workspace / "registry" / "archive" / f"pruned-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    if regs.source == "sqlite":
        return outcomes + _state(actions, regs.workspace, marks, prunes, now, archive, options)
    done: dict[str, list[str]] = defaultdict(list)
    touched: dict[str, set[str]] = {}  # registry file -> agent ids its write changed
    failed: dict[str, str] = {}
    for path, kind in _files_to_write(regs, marks | prunes, _counter_files(actions)):
        edit, removed, touched[str(path)] = _editor(kind, marks, prunes, now, counters_selected(options.plan))

        def archive_removed(data: dict[str, Any], path: Path = path, removed: list = removed) -> None:
            if removed:
                rel = str(path.relative_to(regs.workspace))
                rows = [{"archived_at": now, "registry": rel, "agent_id": i, "entry": e} for i, e in removed]
                append_archive(regs.workspace, archive, rows)

        try:
            result = rewrite(
                path,
                kind,
                edit,
                workspace=regs.workspace,
                lock_timeout=options.lock_timeout,
                before_write=archive_removed,
            )
            done[str(path)] = list(result.changes)
        except (RegistryError, LockTimeout, OSError) as exc:
            failed[str(path)] = str(exc).splitlines()[0]
    holders: dict[str, list[str]] = defaultdict(list)  # agent id -> the registry files that list it
    for file in regs.files:
        for record in file.agents:
            holders[record.id].append(str(file.path))
    for action in actions:
        if isinstance(action.target, FileTarget):
            path = action.target.path
            if path in failed:
                outcomes.append(Outcome(action, "failed", failed[path]))
            else:
                changed = [c for c in done.get(path, []) if c.startswith("counter ")]
                outcomes.append(Outcome(action, "done", "; ".join(changed) or "already right"))
            continue
        assert isinstance(action.target, AgentTarget)
        agent_id = action.target.id
        if agent_id not in marks | prunes:
            continue
        paths = holders[agent_id]
        errors = [failed[p] for p in paths if p in failed]
        applied = [Path(p).name for p in paths if p in done and agent_id in touched[p]]
        if errors:
            outcomes.append(Outcome(action, "failed", errors[0]))
        elif applied:
            outcomes.append(Outcome(action, "done", "in " + ", ".join(applied)))
        else:
            outcomes.append(Outcome(action, "skipped", "entry changed since the snapshot; left as it is"))
    return outcomes


def _state(
    actions: list[Action], workspace: Path, marks: set[str], prunes: set[str], now: str, archive: Path, options: Options
) -> list[Outcome]:
    """The state database: every verified change in one transaction; outcomes by what each row allowed."""
    try:
        written = sqlite_write.apply_edits(workspace, marks, prunes, now, archive, options.lock_timeout)
    except (RegistryError, OSError) as exc:
        return [Outcome(x, "failed", str(exc).splitlines()[0]) for x in actions if _entry_id(x) in marks | prunes]
    outcomes = []
    for action in actions:
        agent_id = _entry_id(action)
        if agent_id not in marks | prunes:
            continue
        if agent_id in written.changed:
            outcomes.append(Outcome(action, "done", f"{written.changed[agent_id]} in {RELPATH.name}"))
        else:
            outcomes.append(Outcome(action, "skipped", "row changed since the snapshot; left as it is"))
    return outcomes


def _entry_id(action: Action) -> str | None:
    return action.target.id if isinstance(action.target, AgentTarget) else None


def _verify_entry(action: Action, a: Analysis, targets: Targets) -> str | None:
    """A ghost must still be a ghost; a prune candidate must still have no live session."""
    assert isinstance(action.target, AgentTarget)
    ghost = verify(action, targets, "ghost_agents")
    if ghost is None or ghost.startswith("refused"):
        return ghost
    if action.kind == "prune_entry":
        agent = a.agent(action.target.id)
        live = agent is not None and (agent.session in a.sessions or agent.session in a.other_sessions)
        if agent is not None and agent.terminal and not live:
            return None
        return "skipped: its session is live again, or it is active but not a ghost"
    return ghost


def _editor(kind: Kind, marks: set[str], prunes: set[str], now: str, counters: bool):
    """An edit applied under the lock, by id, to whatever the file holds now; what it removed; the ids it changed.

    Pruned ids leave `agent_hierarchy` too. Counters are recomputed from the entries as they now are
    when the counters check is part of this run.
    """
    removed: list[tuple[str, Any]] = []
    touched: set[str] = set()

    def edit(data: dict[str, Any]) -> list[str]:
        removed.clear()
        touched.clear()
        changes: list[str] = []
        entries = list(data["agents"].items()) if kind == "global" else [(e.get("id"), e) for e in data["agents"]]
        for agent_id, entry in entries:
            if agent_id in prunes:
                removed.append((agent_id, entry))
                touched.add(agent_id)
                changes.append(f"pruned {agent_id}")
            elif agent_id in marks and status_class(entry.get("status")) == "active":
                entry["status"] = "terminated"
                entry["terminated_at"] = now
                entry["termination_reason"] = "session_not_found"
                touched.add(agent_id)
                changes.append(f"terminated {agent_id}")
        gone = {agent_id for agent_id, _ in removed}
        if kind == "global":
            for agent_id in gone:
                del data["agents"][agent_id]
        else:
            data["agents"] = [e for e in data["agents"] if e.get("id") not in gone]
            _drop_from_hierarchy(data, gone)
        if counters:
            recs, task_ids = records(kind, data)
            for name, value in expected_counters(kind, recs, task_ids).items():
                if name in data and data[name] != value:
                    changes.append(f"counter {name} {data[name]} → {value}")
                    data[name] = value
        return changes

    return edit, removed, touched


def _drop_from_hierarchy(data: dict[str, Any], gone: set[str]) -> None:
    """Pruned agents leave `agent_hierarchy`: as children, and as parents with no child left."""
    tree = data.get("agent_hierarchy")
    if not gone or not isinstance(tree, dict):
        return
    for parent in list(tree):
        children = tree[parent]
        if isinstance(children, list):
            tree[parent] = [c for c in children if c not in gone]
        if parent in gone and not tree[parent]:
            del tree[parent]
