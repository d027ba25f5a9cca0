"""Turn failing findings into one ordered remediation plan.

A check carries the fixer that remedies it (`Check.fixer`: the built-in ones are attached below, a plugin's
through `registry.add(..., fixer=...)`, one way for both). Checks with no fixer (a malformed registry,
disagreeing registries, an unknown status, a split brain) are listed for a person; information
findings (a foreign Claude, an untracked session) never become actions. Only the checks this run
selected (`-k`, `-m`, node ids) are acted on. Two kinds of action wait for an explicit flag,
because the evidence behind them may be a mistake of the operator's rather than a fault:
killing a session a person is attached to, and marking agents dead while a checked tmux server
is not running at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from healthchecks.analysis import Analysis
from healthchecks.checks import (
    COUNTERS,
    DUPLICATE_AGENTS,
    GHOST_AGENTS,
    LEAKED_SERVERS,
    LEAKED_SESSIONS,
    ORPHAN_PROCESSES,
    ORPHANED_AGENTS,
    REGISTRY,
    STALE_SCOPES,
    ZOMBIE_SESSIONS,
)
from healthchecks.records import AgentRecord
from healthchecks.results import Finding, Results
from healthchecks.targets import (
    AgentTarget,
    CounterTarget,
    FileTarget,
    PaneTarget,
    ProcessTarget,
    ScopeTarget,
    ServerTarget,
    SessionTarget,
    Target,
)

from .backups import DEFAULT_DAYS, DEFAULT_KEEP

Kind = Literal["kill_process", "kill_pane", "kill_session", "kill_server", "mark_terminated", "prune_entry",
               "set_counters", "archive_scope"]
ORDER: dict[str, int] = {
    "kill_process": 0,
    "kill_pane": 1,
    "kill_session": 1,
    "kill_server": 2,
    "mark_terminated": 3,
    "prune_entry": 3,
    "archive_scope": 3,
    "set_counters": 4,
}
ENTRY_KINDS = ("mark_terminated", "prune_entry")  # actions on one agent's records
RECORD_KINDS = (*ENTRY_KINDS, "archive_scope", "set_counters")  # every action the records' writer carries out
VERBS = {
    "kill_process": "kill process tree of",
    "kill_pane": "kill the pane's process tree and the pane of",
    "kill_session": "kill the panes' processes and",
    "kill_server": "kill the panes' processes and the tmux",
    "mark_terminated": "mark dead:",
    "prune_entry": "archive and remove",
    "archive_scope": "move into the archive:",
    "set_counters": "set counters of",
}


@dataclass(frozen=True)
class Options:
    """The fix's own options, parsed once (fixers.session); timeouts of locks and tmux are the Settings'."""

    prune: bool = False
    selected: frozenset[str] | None = None  # check ids this run selected; None: all of them
    kill_attached: bool = False
    allow_server_down: bool = False
    term_timeout: float = 5.0  # how long ended processes get between SIGTERM and SIGKILL
    keep_backups: int = DEFAULT_KEEP  # backups kept per written file (fixers.backups), the newest always
    backup_days: float = DEFAULT_DAYS  # older backups are removed, except each file's newest


ActionKey = tuple[Kind, Target]  # Action.key


@dataclass(frozen=True)
class Action:
    kind: Kind
    target: Target  # what it acts on, exactly as the finding identified it
    entity: str
    reason: str
    check: str
    detail: str = ""

    @property
    def key(self) -> ActionKey:
        """Identity across rounds: counters are recomputed, so their planned values (detail) are not part of it."""
        return (self.kind, self.target)

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{VERBS[self.kind]} {self.entity}{extra} — {self.reason}"


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    manual: list[Finding] = field(default_factory=list)  # failing findings no fixer handles
    held: list[str] = field(default_factory=list)  # fixable, but waiting for an explicit flag
    blocked: list[str] = field(default_factory=list)  # checks that could not be judged, so not fixed
    waived: frozenset[CounterTarget] = frozenset()  # counters a person waived: no write of the plan touches them

    def lines(self) -> list[str]:
        out = [f"{i:3d}. {a.describe()}" for i, a in enumerate(self.actions, 1)] or ["  (no actions)"]
        out += [f"  not fixed automatically: {f.check}: {f.line()}" for f in self.manual]
        out += [f"  held back: {line}" for line in self.held]
        out += [f"  not planned: {reason}" for reason in self.blocked]
        return out


Fixer = Callable[[Finding, Analysis, Options], list[Action]]


def _process(f: Finding, a: Analysis, opts: Options) -> list[Action]:
    """A process alone, or the pane it is the process of (the pane goes with it: a dead pane is a ghost's place)."""
    if isinstance(f.target, PaneTarget):
        return [Action("kill_pane", f.target, f.entity, f.reason, f.check)]
    if isinstance(f.target, ProcessTarget):
        return [Action("kill_process", f.target, f.entity, f.reason, f.check)]
    return []  # nothing exact to act on (e.g. duplicates none of which is in its recorded place): for a person


def _server(f: Finding, a: Analysis, opts: Options) -> list[Action]:
    return [Action("kill_server", f.target, f.entity, f.reason, f.check)]


def _scope(f: Finding, a: Analysis, opts: Options) -> list[Action]:
    return [Action("archive_scope", f.target, f.entity, f.reason, f.check)]


def _agent_entry(agent_id: str, session: str, reason: str, check: str, prune: bool, entity: str = "") -> Action:
    kind: Kind = "prune_entry" if prune else "mark_terminated"
    return Action(kind, AgentTarget(agent_id, session), entity or f"agent {agent_id}", reason, check)


def _session(f: Finding, a: Analysis, opts: Options) -> list[Action]:
    """Kill the session; its agents then have no session, so their entries are settled in the same plan."""
    assert isinstance(f.target, SessionTarget)
    actions = [Action("kill_session", f.target, f.entity, f.reason, f.check)]
    if a.snapshot.registries.dialect.mark is None:
        return actions  # its records are never written: the manager settles them itself
    for agent in a.agents_by_session.get(f.target.name, []):
        if agent.active or opts.prune:
            actions.append(
                _agent_entry(agent.id, agent.session, f"its session is killed ({f.check})", f.check, opts.prune)
            )
    return actions


def _ghost(f: Finding, a: Analysis, opts: Options) -> list[Action]:
    assert isinstance(f.target, AgentTarget)
    return [_agent_entry(f.target.id, f.target.session, f.reason, f.check, opts.prune, f.entity)]


def _counter(f: Finding, a: Analysis, opts: Options) -> list[Action]:
    return []  # counters are planned per file, after every entry change is known (see make_plan)


for _check, _fixer in {
    ORPHAN_PROCESSES: _process,
    ORPHANED_AGENTS: _process,
    DUPLICATE_AGENTS: _process,
    LEAKED_SERVERS: _server,
    STALE_SCOPES: _scope,
    ZOMBIE_SESSIONS: _session,
    LEAKED_SESSIONS: _session,
    GHOST_AGENTS: _ghost,
    COUNTERS: _counter,
}.items():
    REGISTRY.attach(_check, _fixer)


def _after(
    records: tuple[AgentRecord, ...], marked: set[str], pruned: set[str], status: str
) -> tuple[AgentRecord, ...]:
    return tuple(r.marked(status) if r.id in marked else r for r in records if r.id not in pruned)


def _hold(action: Action, a: Analysis, opts: Options) -> str | None:
    """Why an action waits for an explicit flag, or None."""
    target = action.target
    if isinstance(target, SessionTarget) and target.attached and not opts.kill_attached:
        who = ", ".join(a.clients_of(target.server, target.name)) or f"{target.attached} client(s)"
        return f"{action.entity} has a person attached ({who}); pass --kill-attached to kill it anyway"
    if isinstance(target, (PaneTarget, ServerTarget)) and not opts.kill_attached and (who := a.attached_to(target)):
        return f"{action.entity}: a person is attached to {who}; pass --kill-attached to kill it anyway"
    agent = a.agent(target.id) if isinstance(target, AgentTarget) else None
    owner = agent.owner if agent is not None else None
    # the manager's own process owns the file: never rewritten
    if action.kind in ENTRY_KINDS and owner is not None and a.owner_alive(owner) is not False:
        return (f"{action.entity}: its owner (pid {owner.pid}, the team's lead) is alive or cannot be "
                "proven dead, and writes its records itself; left to it")
    if action.kind in ENTRY_KINDS and a.stopped_servers and not opts.allow_server_down:
        names = ", ".join(s.label for s in a.stopped_servers)
        return (
            f"{action.entity}: tmux server {names} is not running, so every agent looks dead (right --tmux-socket? "
            "right user?); pass --allow-server-down to change its entry anyway"
        )
    return None


def make_plan(analysis: Analysis, results: Results, opts: Options | None = None) -> Plan:
    opts = opts or Options()
    plan = Plan()
    actions: dict[ActionKey, Action] = {}
    writable = analysis.snapshot.registries.dialect.mark is not None  # else records are a person's to change
    for check_id, result in results.items():
        if opts.selected is not None and check_id not in opts.selected:
            continue
        if not result.judged:
            plan.blocked.append(f"{check_id}: {result.reason}")
            continue
        for finding in result.failing:
            fixer = REGISTRY[check_id].fixer if check_id in REGISTRY else None
            if fixer is None or (isinstance(finding.target, AgentTarget) and not writable):
                plan.manual.append(finding)
                continue
            for action in fixer(finding, analysis, opts):
                actions.setdefault(action.key, action)
    if writable and opts.prune and not plan.blocked and (opts.selected is None or GHOST_AGENTS in opts.selected):
        _plan_history_prunes(analysis, actions)
    for key, action in list(actions.items()):
        if why := _hold(action, analysis, opts):
            plan.held.append(why)
            del actions[key]
    # An entry whose session kill is held back stays as it is.
    kept_sessions = {a.target.name for a in actions.values() if isinstance(a.target, SessionTarget)}
    for key, action in list(actions.items()):
        from_session = action.check in (ZOMBIE_SESSIONS, LEAKED_SESSIONS)
        if from_session and isinstance(action.target, AgentTarget) and action.target.session not in kept_sessions:
            del actions[key]
    # A server that goes whole takes its panes with it: one action, verified once.
    servers = {a.target.server for a in actions.values() if isinstance(a.target, ServerTarget)}
    for key, action in list(actions.items()):
        if isinstance(action.target, PaneTarget) and action.target.server in servers:
            del actions[key]
    if opts.selected is None or STALE_SCOPES in opts.selected:
        _plan_scopes_left(analysis, actions)
    plan.waived = waived_counters(results)
    if counters_selected(opts) and not plan.blocked:
        _plan_counters(analysis, actions, plan.waived)
    plan.actions = sorted(actions.values(), key=lambda a: ORDER[a.kind])
    return plan


def _plan_scopes_left(analysis: Analysis, actions: dict[ActionKey, Action]) -> None:
    """A scope whose owner is dead becomes stale once the plan ends every process running its records: archive it
    in the same plan (re-verified as stale at that moment), and leave its records unmarked (they go with it)."""
    ended = set()
    for action in actions.values():
        target = action.target
        if isinstance(target, ProcessTarget):
            ended.add(target.pid)
        elif isinstance(target, PaneTarget) and target.root is not None:
            ended.add(target.root.pid)
        elif isinstance(target, ServerTarget):
            ended |= {p.root.pid for p in target.panes if p.root is not None}
    archived = {a.target.path for a in actions.values() if isinstance(a.target, ScopeTarget)}
    for scope in analysis.owned_scopes:
        if analysis.owner_alive(scope.owner) is not False:
            continue
        running = {p.pid for r in scope.agents for p in analysis.carriers.get(r.id, ())}
        if str(scope.path.parent) not in archived and running and running <= ended:
            noun = analysis.snapshot.registries.dialect.nouns[1]
            target = ScopeTarget(str(scope.path.parent), scope.label, scope.digest)
            act = Action("archive_scope", target, f"{noun} {scope.label}",
                         "its lead is dead and this plan ends every member still running", STALE_SCOPES)
            actions.setdefault(act.key, act)
            archived.add(target.path)
    ids = {r.id for s in analysis.owned_scopes if str(s.path.parent) in archived for r in s.agents}
    for key, action in list(actions.items()):
        if action.kind in ENTRY_KINDS and isinstance(action.target, AgentTarget) and action.target.id in ids:
            del actions[key]


def counters_selected(opts: Options) -> bool:
    return opts.selected is None or COUNTERS in opts.selected


def entry_ids(actions: Iterable[Action]) -> tuple[set[str], set[str]]:
    """The agent ids the actions mark terminated, and those they prune."""
    entries = [(a.kind, a.target) for a in actions if isinstance(a.target, AgentTarget)]
    return (
        {target.id for kind, target in entries if kind == "mark_terminated"},
        {target.id for kind, target in entries if kind == "prune_entry"},
    )


def waived_counters(results: Results) -> frozenset[CounterTarget]:
    """The counters whose findings a person waived: the writers are told them, typed, and leave them as they are."""
    result = results.get(COUNTERS)
    found = result.waived if result is not None else ()
    return frozenset(f.target for f in found if isinstance(f.target, CounterTarget))


def _plan_counters(analysis: Analysis, actions: dict[ActionKey, Action], waived: frozenset[CounterTarget]) -> None:
    """Counters last, computed from the entries as they will be after the planned entry changes; a waived one is
    never planned."""
    marked, pruned = entry_ids(actions.values())
    records = analysis.snapshot.registries
    status = records.dialect.mark.status if records.dialect.mark else ""
    for file in records.scopes:
        after = _after(file.agents, marked, pruned, status)
        expected = records.dialect.expected(file.kind, after, len(file.task_ids))
        changes = {k: v for k, v in expected.items()
                   if k in file.counters and file.counters[k] != v and CounterTarget(str(file.path), k) not in waived}
        if changes:
            detail = ", ".join(f"{k} {file.counters[k]} → {v}" for k, v in changes.items())
            entity = _label(analysis.snapshot.registries.workspace, file.path)
            act = Action(
                "set_counters",
                FileTarget(str(file.path)),
                entity,
                "computed from the entries as they will be",
                COUNTERS,
                detail,
            )
            actions.setdefault(act.key, act)


def _plan_history_prunes(analysis: Analysis, actions: dict[ActionKey, Action]) -> None:
    """--prune (the seed's mode): every entry without a live session goes to the archive, not only ghosts."""
    killed = {a.target.name for a in actions.values() if isinstance(a.target, SessionTarget)}
    for agent in analysis.agents.values():
        live = agent.session in analysis.sessions and agent.session not in killed
        if live or not agent.terminal or agent.session in analysis.other_sessions:
            continue  # ghosts came through their check; unknown statuses are left to a person
        act = _agent_entry(agent.id, agent.session, "finished, no live session (--prune)", "prune", True)
        actions.setdefault(act.key, act)


def _label(workspace: Path, path: Path) -> str:
    return str(path.relative_to(workspace)) if path.is_relative_to(workspace) else str(path)
