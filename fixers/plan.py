"""Turn failing findings into one ordered remediation plan.

Each check maps to the fixer that remedies it (FIXERS). Checks with no fixer (a malformed registry,
disagreeing registries, an unknown status) are listed for a person; information-level findings
(foreign Claude, untracked sessions) never become actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from healthchecks.analysis import Analysis
from healthchecks.checks import Finding
from healthchecks.registry import AgentRecord, expected_counters

Kind = Literal["kill_process", "kill_session", "mark_terminated", "prune_entry", "set_counters"]
ORDER: dict[str, int] = {
    "kill_process": 0,
    "kill_session": 1,
    "mark_terminated": 2,
    "prune_entry": 2,
    "set_counters": 3,
}
VERBS = {
    "kill_process": "kill process tree of",
    "kill_session": "kill the panes' processes and",
    "mark_terminated": "mark terminated:",
    "prune_entry": "archive and remove",
    "set_counters": "set counters of",
}


@dataclass(frozen=True)
class Action:
    kind: Kind
    target: tuple  # what it acts on, exactly as the finding identified it
    entity: str
    reason: str
    check: str
    detail: str = ""

    @property
    def key(self) -> tuple:
        """Identity across rounds: counters are recomputed, so their planned values are not part of it."""
        return (self.kind, self.target[:2]) if self.kind == "set_counters" else (self.kind, self.target)

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{VERBS[self.kind]} {self.entity}{extra} — {self.reason}"


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    manual: list[Finding] = field(default_factory=list)  # failing findings no fixer handles
    blocked: list[str] = field(default_factory=list)  # checks that could not be judged, so not fixed

    def lines(self) -> list[str]:
        out = [f"{i:3d}. {a.describe()}" for i, a in enumerate(self.actions, 1)] or ["  (no actions)"]
        out += [f"  not fixed automatically: {f.check}: {f.line()}" for f in self.manual]
        out += [f"  not planned: {reason}" for reason in self.blocked]
        return out


Fixer = Callable[[Finding, Analysis, bool], list[Action]]


def _process(f: Finding, a: Analysis, prune: bool) -> list[Action]:
    return [Action("kill_process", f.target, f.entity, f.reason, f.check)]


def _agent_entry(agent_id: str, reason: str, check: str, prune: bool) -> Action:
    kind: Kind = "prune_entry" if prune else "mark_terminated"
    return Action(kind, ("agent", agent_id), f"agent {agent_id}", reason, check)


def _session(f: Finding, a: Analysis, prune: bool) -> list[Action]:
    """Kill the session; its agents then have no session, so their entries are settled in the same plan."""
    actions = [Action("kill_session", f.target, f.entity, f.reason, f.check)]
    for agent in a.agents_by_session.get(f.target[2], []):
        if agent.active or prune:
            actions.append(_agent_entry(agent.id, f"its session is killed ({f.check})", f.check, prune))
    return actions


def _ghost(f: Finding, a: Analysis, prune: bool) -> list[Action]:
    return [_agent_entry(f.target[1], f.reason, f.check, prune)]


def _counter(f: Finding, a: Analysis, prune: bool) -> list[Action]:
    return []  # counters are planned per file, after every entry change is known (see make_plan)


FIXERS: dict[str, Fixer] = {
    "orphan_processes": _process,
    "zombie_sessions": _session,
    "leaked_sessions": _session,
    "ghost_agents": _ghost,
    "counters": _counter,
}


def _after(records: tuple[AgentRecord, ...], marked: set[str], pruned: set[str]) -> tuple[AgentRecord, ...]:
    return tuple(replace(r, status="terminated") if r.id in marked else r for r in records if r.id not in pruned)


def make_plan(analysis: Analysis, results: dict, prune: bool = False) -> Plan:
    plan = Plan()
    actions: dict[tuple, Action] = {}
    for check_id, result in results.items():
        if isinstance(result, tuple):
            plan.blocked.append(f"{check_id}: {result[1]}")
            continue
        for finding in result:
            if finding.severity != "fail":
                continue
            fixer = FIXERS.get(check_id)
            if fixer is None:
                plan.manual.append(finding)
                continue
            for action in fixer(finding, analysis, prune):
                actions.setdefault(action.key, action)
    if prune and not plan.blocked:
        _plan_history_prunes(analysis, actions)
    marked = {a.target[1] for a in actions.values() if a.kind == "mark_terminated"}
    pruned = {a.target[1] for a in actions.values() if a.kind == "prune_entry"}
    for file in analysis.snapshot.registries.files if not plan.blocked else ():
        after = _after(file.agents, marked, pruned)
        expected = expected_counters(file.kind, after, file.task_ids)
        changes = {k: v for k, v in expected.items() if k in file.counters and file.counters[k] != v}
        if changes:
            detail = ", ".join(f"{k} {file.counters[k]} → {v}" for k, v in changes.items())
            entity = _label(analysis.snapshot.registries.workspace, file.path)
            act = Action(
                "set_counters",
                ("counter", str(file.path), tuple(sorted(changes.items()))),
                entity,
                "computed from the entries as they will be",
                "counters",
                detail,
            )
            actions.setdefault(act.key, act)
    plan.actions = sorted(actions.values(), key=lambda a: ORDER[a.kind])
    return plan


def _plan_history_prunes(analysis: Analysis, actions: dict[tuple, Action]) -> None:
    """--prune (the seed's mode): every entry without a live session goes to the archive, not only ghosts."""
    killed = {a.target[2] for a in actions.values() if a.kind == "kill_session"}
    for agent in analysis.agents.values():
        live = agent.session in analysis.sessions and agent.session not in killed
        if live or not agent.terminal:
            continue  # ghosts came through their check; unknown statuses are left to a person
        act = _agent_entry(agent.id, "finished, no live session (--prune)", "prune", True)
        actions.setdefault(act.key, act)


def _label(workspace: Path, path: Path) -> str:
    return str(path.relative_to(workspace)) if path.is_relative_to(workspace) else str(path)
