"""Carry out a confirmed plan, re-verifying every action at the moment it runs.

The plan was made from a snapshot that may be seconds old. So each phase (processes, sessions,
registry) first takes a fresh snapshot and judges it again; an action runs only if its exact
target (PID + start time, session name + created time, agent id) is still a failing finding
of the same check. Anything that changed is skipped and said so; a check that cannot be judged
now (tmux unreachable, registry unreadable) refuses its actions.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from healthchecks import checks, tmux
from healthchecks.analysis import Analysis, LiveSession
from healthchecks.registry import RegistryError, expected_counters, records, status_class
from healthchecks.settings import Settings
from healthchecks.snapshot import collect
from healthchecks.tmux import TmuxServer

from .plan import Action, Plan
from .registry_write import LockTimeout, append_archive, rewrite
from .signals import end_trees, identity_lost


@dataclass(frozen=True)
class Options:
    prune: bool = False
    lock_timeout: float = 10.0
    term_timeout: float = 5.0


@dataclass(frozen=True)
class Outcome:
    action: Action
    status: str  # "done", "already gone", "skipped", "refused", "failed"
    detail: str = ""

    def line(self) -> str:
        return f"{self.status:>12}: {self.action.describe()}" + (f" [{self.detail}]" if self.detail else "")


def fresh(settings: Settings) -> tuple[Analysis, dict]:
    analysis = Analysis(collect(settings))
    return analysis, checks.judge(analysis)


Targets = dict[str, "set[tuple] | str"]  # check -> failing targets, or why it cannot be judged


def failing_targets(results: dict) -> Targets:
    """Per check: the targets of its failing findings now, or why it cannot be judged now."""
    targets: Targets = {}
    for check, result in results.items():
        unjudged = isinstance(result, tuple)
        targets[check] = f"refused: {result[1]}" if unjudged else {f.target for f in result if f.severity == "fail"}
    return targets


def verify(action: Action, targets: Targets) -> str | None:
    """None when the action's target is still a failing finding of its check; else why not."""
    found = targets[action.check]
    if isinstance(found, str):
        return found
    return None if action.target in found else "skipped: no longer a finding of " + action.check


def apply(plan: Plan, settings: Settings, options: Options) -> list[Outcome]:
    phases = (("kill_process",), ("kill_session",), ("mark_terminated", "prune_entry", "set_counters"))
    phase_fns = (_processes, _sessions, _registry)
    outcomes: list[Outcome] = []
    for kinds, fn in zip(phases, phase_fns, strict=True):
        actions = [a for a in plan.actions if a.kind in kinds]
        if not actions:
            continue
        analysis, results = fresh(settings)
        unjudged = [f"{c}: {r[1]}" for c, r in results.items() if isinstance(r, tuple)]
        if unjudged:  # tmux unreachable or registry unreadable right now: act on nothing
            outcomes += [Outcome(a, "refused", unjudged[0]) for a in actions]
        else:
            outcomes += fn(actions, analysis, failing_targets(results), options)
    return outcomes


def _not_verified(action: Action, why: str, gone: bool) -> Outcome:
    if gone:
        return Outcome(action, "already gone")
    status, _, detail = why.partition(": ")
    return Outcome(action, status, detail)


def _unverified_process(action: Action, why: str) -> Outcome:
    """Say precisely why a planned kill does not happen: gone, PID reused, or no longer an orphan."""
    _, pid, ticks = action.target
    if not why.startswith("refused") and (lost := identity_lost(pid, ticks)):
        return Outcome(action, lost.status, lost.detail)
    return _not_verified(action, why, gone=False)


def _processes(actions: list[Action], a: Analysis, targets: Targets, options: Options) -> list[Outcome]:
    outcomes, roots = [], []
    for action in actions:
        if why := verify(action, targets):
            outcomes.append(_unverified_process(action, why))
        else:
            roots.append((action, action.target[1], action.target[2]))
    ended = end_trees(roots, a.snapshot.self_pids, options.term_timeout)
    outcomes += [Outcome(action, ended[action].status, ended[action].detail) for action, _, _ in roots]
    return outcomes


def _sessions(actions: list[Action], a: Analysis, targets: Targets, options: Options) -> list[Outcome]:
    outcomes: list[Outcome] = []
    verified: list[tuple[Action, LiveSession]] = []
    for action in actions:
        _, server, name, _ = action.target
        session = next((s for s in a.sessions.get(name, []) if s.server == server), None)
        if why := verify(action, targets):
            outcomes.append(_not_verified(action, why, gone=session is None and not why.startswith("refused")))
        else:
            verified.append((action, session))
    roots = [
        ((action, pane.pid), pane.pid, a.snapshot.by_pid[pane.pid].start_ticks)
        for action, session in verified
        for pane in session.panes
        if pane.pid in a.snapshot.by_pid
    ]
    end_trees(roots, a.snapshot.self_pids, options.term_timeout)  # kill-session alone leaves children alive
    by_server: dict[str, dict[Action, str]] = defaultdict(dict)  # server -> action -> the verified session's id
    for action, session in verified:
        by_server[session.server][action] = session.id
    server_pids = {s.label: s.server_pid for s in a.snapshot.servers}
    for server, ids in by_server.items():
        after, error = _kill_sessions(server, server_pids.get(server), set(ids.values()))
        live = {p.session_id for p in after.panes}
        for action, session_id in ids.items():
            if error:
                outcomes.append(Outcome(action, "failed", error))
            elif session_id in live:
                outcomes.append(Outcome(action, "failed", "session still live"))
            else:
                outcomes.append(Outcome(action, "done", "panes' processes ended, session killed"))
    return outcomes


def _kill_sessions(server: str, server_pid: int | None, ids: set[str], attempts: int = 5) -> tuple[TmuxServer, str]:
    """kill-session by id whatever of ``ids`` is still live; returns (the last read, why it failed).

    tmux stops a command sequence at its first error, and a session whose pane processes just ended
    closes by itself at any moment: so kill what is live, read again, repeat (bounded). Ids restart
    with a new server, so a server that restarted since the checks is left alone.
    """
    for _ in range(attempts):
        now = tmux.read_server(server)
        if not now.reachable:
            return now, f"tmux unreachable: {now.reason}"
        if now.server_pid is not None and now.server_pid != server_pid:
            return now, f"tmux server restarted (pid {server_pid} -> {now.server_pid}); sessions not killed"
        live = sorted(ids & {p.session_id for p in now.panes})
        if not live:
            return now, ""
        command = [word for session_id in live for word in ("kill-session", "-t", session_id, ";")]
        try:
            tmux.run(server, *command[:-1])
        except (OSError, tmux.subprocess.TimeoutExpired) as exc:
            return now, f"tmux: {exc}"
    return tmux.read_server(server), ""


def _registry(actions: list[Action], a: Analysis, targets: Targets, options: Options) -> list[Outcome]:
    """Every entry change and counter fix, one locked write per registry file."""
    outcomes: list[Outcome] = []
    marks: set[str] = set()
    prunes: set[str] = set()
    for action in actions:
        if action.kind == "set_counters":
            continue
        agent_id = action.target[1]
        why = _verify_entry(action, a, targets)
        if why:
            outcomes.append(_not_verified(action, why, gone=agent_id not in a.agents))
        else:
            (prunes if action.kind == "prune_entry" else marks).add(agent_id)
    regs = a.snapshot.registries
    if not regs.ok:
        return outcomes + [
            Outcome(x, "refused", f"registry unusable: {regs.all_errors[0]}")
            for x in actions
            if x.kind == "set_counters"
        ]
    counter_files = {x.target[1] for x in actions if x.kind == "set_counters"}
    now = datetime.now().isoformat(timespec="microseconds")
    archive = regs.workspace / "registry" / "archive" / f"pruned-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    done: dict[str, list[str]] = defaultdict(list)
    touched: dict[str, set[str]] = {}  # registry file -> agent ids its write changed
    failed: dict[str, str] = {}
    for file in regs.files:
        ids = {r.id for r in file.agents}
        if not (ids & (marks | prunes)) and str(file.path) not in counter_files:
            continue
        edit, archive_removed, touched[str(file.path)] = _editor(
            file.kind, marks, prunes, now, archive, str(file.path.relative_to(regs.workspace))
        )
        try:
            result = rewrite(
                file.path,
                file.kind,
                edit,
                workspace=regs.workspace,
                lock_timeout=options.lock_timeout,
                before_write=archive_removed,
            )
            done[str(file.path)] = list(result.changes)
        except (RegistryError, LockTimeout, OSError) as exc:
            failed[str(file.path)] = str(exc).splitlines()[0]
    holders: dict[str, list[str]] = defaultdict(list)  # agent id -> the registry files that list it
    for file in regs.files:
        for record in file.agents:
            holders[record.id].append(str(file.path))
    for action in actions:
        if action.kind == "set_counters":
            path = action.target[1]
            if path in failed:
                outcomes.append(Outcome(action, "failed", failed[path]))
            else:
                changed = [c for c in done.get(path, []) if c.startswith("counter ")]
                outcomes.append(Outcome(action, "done", "; ".join(changed) or "already right"))
            continue
        agent_id = action.target[1]
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


def _verify_entry(action: Action, a: Analysis, targets: Targets) -> str | None:
    """A ghost must still be a ghost; a prune candidate must still have no live session."""
    agent_id = action.target[1]
    ghost = verify(Action(action.kind, action.target, action.entity, action.reason, "ghost_agents"), targets)
    if ghost is None or ghost.startswith("refused"):
        return ghost
    if action.kind == "prune_entry":
        agent = a.agents.get(agent_id)
        if agent is not None and agent.terminal and agent.session not in a.sessions:
            return None
        return "skipped: its session is live again, or it is active but not a ghost"
    return ghost


def _editor(kind: str, marks: set[str], prunes: set[str], now: str, archive: Path, rel: str):
    """An edit applied under the lock, by id, to whatever the file holds now; its archiving step; the ids it changed.

    The archive step runs before the registry is replaced, so a pruned entry is always somewhere.
    """
    removed: list[tuple[str, Any]] = []
    touched: set[str] = set()

    def archive_removed(data: dict[str, Any]) -> None:
        if removed:
            append_archive(
                archive,
                [
                    {"archived_at": now, "registry": rel, "agent_id": agent_id, "entry": entry}
                    for agent_id, entry in removed
                ],
            )

    def edit(data: dict[str, Any]) -> list[str]:
        changes: list[str] = []
        if kind == "global":
            agents = data["agents"]
            entries = list(agents.items())
        else:
            agents = None
            entries = [(e.get("id"), e) for e in data["agents"]]
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
        if agents is not None:
            for agent_id, _ in removed:
                del agents[agent_id]
        else:
            data["agents"] = [e for e in data["agents"] if e.get("id") not in prunes]
        recs, task_ids = records(kind, data)  # counters last, from the entries as they now are
        for name, value in expected_counters(kind, recs, task_ids).items():
            if name in data and data[name] != value:
                changes.append(f"counter {name} {data[name]} → {value}")
                data[name] = value
        return changes

    return edit, archive_removed, touched
