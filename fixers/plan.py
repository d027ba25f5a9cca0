"""Turn failing findings into one ordered remediation plan.

A check carries the fixer that remedies it (`Check.fixer`: the built-in ones are attached below, a plugin's
through `registry.add(..., fixer=...)`, one way for both). Checks with no fixer (a malformed registry,
disagreeing registries, an unknown status, a split brain) are listed for a person; information
findings (a foreign Claude, an untracked session) never become actions. Only the checks this run
selected (`-k`, `-m`, node ids) are acted on. Two kinds of action wait for an explicit flag,
because the evidence behind them may be a mistake of the operator's rather than a fault:
killing a session a person is attached to, and marking agents dead while a checked tmux server
is not running at all. What spans findings (those holds, a server taking its panes, the counters computed last)
is a named rule of RULES, so make_plan is a loop; each kind of action is one ActionKind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from healthchecks.analysis import Analysis
from healthchecks.checks import (
    COUNTERS,
    DUPLICATE_AGENTS,
    GHOST_AGENTS,
    LEAKED_SERVERS,
    LEAKED_SESSIONS,
    LEAKED_WORKTREES,
    ORPHAN_PROCESSES,
    ORPHANED_AGENTS,
    REGISTRY,
    STALE_SCOPES,
    ZOMBIE_SESSIONS,
)
from healthchecks.programs import Role
from healthchecks.records import AgentRecord
from healthchecks.results import CheckResult, Finding, Results
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
    WorktreeTarget,
)

from .backups import DEFAULT_DAYS, DEFAULT_KEEP

T = TypeVar("T", bound=Target)  # an action's target type: its kind's (ActionKind.target)

class Phase(Enum):
    """The phases of fixers.apply, in the order they run: each re-verifies its actions on a fresh snapshot."""

    PROCESSES = 1
    PANES = 2
    SESSIONS = 3
    SERVERS = 4
    RECORDS = 5  # everything the records' own writer does (fixers.writers), in one write
    WORKTREES = 6  # git worktrees a manager's sessions left (fixers.effects.remove_worktree)


class ActionKind(str, Enum):
    """One description per kind of action: its name (as the outputs show it), its place in a plan, the words a
    person reads, the phase that carries it out, and the type of target it takes."""

    order: int
    verb: str
    phase: Phase
    target: type

    def __new__(cls, name: str, order: int, verb: str, phase: Phase, target: type) -> ActionKind:
        kind = str.__new__(cls, name)
        kind._value_ = name
        kind.order, kind.verb, kind.phase, kind.target = order, verb, phase, target
        return kind

    def __str__(self) -> str:
        return str(self.value)

    @classmethod
    def of(cls, kind: str) -> ActionKind:
        """The kind a name stands for (as the outputs and a plugin's fixer write it), or the kind itself."""
        return cast(ActionKind, cls._value2member_map_[kind])

    @property
    def records(self) -> bool:
        """Whether the records' writer carries it out (a write, not a signal)."""
        return self.phase is Phase.RECORDS

    @property
    def entry(self) -> bool:
        """Whether it changes one agent's record."""
        return self.target is AgentTarget

    KILL_PROCESS = ("kill_process", 0, "kill process tree of", Phase.PROCESSES, ProcessTarget)
    KILL_PANE = ("kill_pane", 1, "kill the pane's process tree and the pane of", Phase.PANES, PaneTarget)
    KILL_SESSION = ("kill_session", 1, "kill the panes' processes and", Phase.SESSIONS, SessionTarget)
    KILL_SERVER = ("kill_server", 2, "kill the panes' processes and the tmux", Phase.SERVERS, ServerTarget)
    MARK_TERMINATED = ("mark_terminated", 3, "mark dead:", Phase.RECORDS, AgentTarget)
    PRUNE_ENTRY = ("prune_entry", 3, "archive and remove", Phase.RECORDS, AgentTarget)
    ARCHIVE_SCOPE = ("archive_scope", 3, "move into the archive:", Phase.RECORDS, ScopeTarget)
    SET_COUNTERS = ("set_counters", 4, "set counters of", Phase.RECORDS, FileTarget)
    REMOVE_WORKTREE = ("remove_worktree", 5, "unlock and remove, when nothing can be lost,", Phase.WORKTREES,
                       WorktreeTarget)


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
    # processes two managers of the run claim (healthchecks.checks.accounted): no manager's plan ends them
    spared: frozenset[int] = frozenset()
    # sessions (server, name) two managers of the run record: no manager's plan kills them or marks their records
    spared_sessions: frozenset[tuple[str, str]] = frozenset()


ActionKey = tuple[ActionKind, Target]  # Action.key


@dataclass(frozen=True)
class Action(Generic[T]):
    kind: ActionKind
    target: T  # what it acts on, exactly as the finding identified it: of its kind's target type
    entity: str
    reason: str
    check: str
    detail: str = ""
    follows: SessionTarget | None = field(default=None, compare=False)  # the session kill it goes with, if any

    def __post_init__(self) -> None:
        """Take the kind by its name too (the outputs' word for it), and check the target's type once, here: every
        phase of fixers.apply then relies on it."""
        kind = ActionKind.of(self.kind)
        object.__setattr__(self, "kind", kind)
        if not isinstance(self.target, kind.target):
            raise TypeError(f"{kind} takes a {kind.target.__name__}, not {type(self.target).__name__}")

    @property
    def key(self) -> ActionKey:
        """Identity across rounds: counters are recomputed, so their planned values (detail) are not part of it."""
        return (self.kind, self.target)

    def describe(self) -> str:
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.kind.verb} {self.entity}{extra} — {self.reason}"


@dataclass(frozen=True)
class Held:
    """A planned action that waits for an explicit flag, and why (the line a person reads)."""

    action: Action[Any]
    why: str

    def line(self) -> str:
        return self.why


@dataclass(frozen=True)
class Blocked:
    """A check that could not be judged, so none of its findings is acted on."""

    check: str
    reason: str

    def line(self) -> str:
        return f"{self.check}: {self.reason}"


@dataclass
class Plan:
    actions: list[Action[Any]] = field(default_factory=list)
    manual: list[Finding] = field(default_factory=list)  # failing findings no fixer handles
    held: list[Held] = field(default_factory=list)  # fixable, but waiting for an explicit flag
    blocked: list[Blocked] = field(default_factory=list)  # checks that could not be judged, so not fixed
    waived: frozenset[CounterTarget] = frozenset()  # counters a person waived: no write of the plan touches them

    def lines(self) -> list[str]:
        out = [f"{i:3d}. {a.describe()}" for i, a in enumerate(self.actions, 1)] or ["  (no actions)"]
        out += [f"  not fixed automatically: {f.check}: {f.line()}" for f in self.manual]
        out += [f"  held back: {h.line()}" for h in self.held]
        out += [f"  not planned: {b.line()}" for b in self.blocked]
        return out


# None: nothing exact to act on, for a person (listed as not fixed automatically)
Fixer = Callable[[Finding, Analysis, Options], "list[Action[Any]] | None"]


@dataclass
class Planning:
    """One plan being made: the findings' actions by key (the first one of a key wins), and the plan they go to."""

    analysis: Analysis
    opts: Options
    plan: Plan
    actions: dict[ActionKey, Action[Any]] = field(default_factory=dict)

    @property
    def writable(self) -> bool:
        """Whether a fix may write the records at all (else they are a person's, or their manager's, to change)."""
        return self.analysis.snapshot.registries.dialect.mark is not None

    def selects(self, check: str) -> bool:
        return self.opts.selected is None or check in self.opts.selected

    def add(self, action: Action[Any]) -> None:
        self.actions.setdefault(action.key, action)

    def drop(self, gone: Callable[[Action[Any]], bool]) -> None:
        """Take out every action ``gone`` says."""
        self.actions = {key: action for key, action in self.actions.items() if not gone(action)}

    def take(self, check: str, result: CheckResult) -> None:
        """One selected check's result: its failing findings through its fixer, or why they are not acted on."""
        if not result.judged:
            self.plan.blocked.append(Blocked(check, result.reason))
            return
        fixer = REGISTRY[check].fixer if check in REGISTRY else None
        for finding in result.failing:
            if fixer is None or (isinstance(finding.target, AgentTarget) and not self.writable):
                self.plan.manual.append(finding)
                continue
            actions = fixer(finding, self.analysis, self.opts)
            if actions is None:  # the fixer found nothing exact to act on: a person's to settle, and listed so
                self.plan.manual.append(finding)
                continue
            for action in actions:
                self.add(action)


Rule = Callable[[Planning, str], None]  # with the check it is registered with (RULES)


def _process(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]] | None:
    """A process alone, or the pane it is the process of (the pane goes with it: a dead pane is a ghost's place)."""
    if isinstance(f.target, PaneTarget):
        return [Action(ActionKind.KILL_PANE, f.target, f.entity, f.reason, f.check)]
    if isinstance(f.target, ProcessTarget):
        return [Action(ActionKind.KILL_PROCESS, f.target, f.entity, f.reason, f.check, _pair(f.target, a))]
    return None  # nothing exact to act on (e.g. duplicates none of which is in its recorded place): for a person


def _pair(target: ProcessTarget, a: Analysis) -> str:
    """A pair's both pids and in which order they are ended (its program's Ending), as the plan's line names them."""
    proc = a.snapshot.by_pid.get(target.pid)
    if not target.carried or proc is None or proc.program is None:
        return ""
    children = ", ".join(f"pid {c.pid}" for c in target.carried)
    if proc.program.ending.role is Role.CHILD:
        return f"{proc.program.name}: its child {children} first, then pid {target.pid}, which exits with it"
    return f"{proc.program.name}: pid {target.pid} passes the signal on; its child {children} is ended if it stays"


def _server(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]]:
    return [Action(ActionKind.KILL_SERVER, f.target, f.entity, f.reason, f.check)]


def _scope(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]]:
    return [Action(ActionKind.ARCHIVE_SCOPE, f.target, f.entity, f.reason, f.check)]


def _agent_entry(target: AgentTarget, reason: str, check: str, prune: bool, entity: str = "",
                 follows: SessionTarget | None = None) -> Action[AgentTarget]:
    kind = ActionKind.PRUNE_ENTRY if prune else ActionKind.MARK_TERMINATED
    return Action(kind, target, entity or f"agent {target.id}", reason, check, follows=follows)


def _session(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]]:
    """Kill the session; its agents then have no session, so their entries are settled in the same plan."""
    kill = Action(ActionKind.KILL_SESSION, cast(SessionTarget, f.target), f.entity, f.reason, f.check)  # checked
    actions: list[Action[Any]] = [kill]
    if a.snapshot.registries.dialect.mark is None:
        return actions  # its records are never written: the manager settles them itself
    for agent in a.tmux.agents_on(kill.target.server, kill.target.name):
        if agent.active or opts.prune:
            target, reason = AgentTarget(agent.id, agent.session), f"its session is killed ({f.check})"
            actions.append(_agent_entry(target, reason, f.check, opts.prune, follows=kill.target))
    return actions


def _ghost(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]]:
    return [_agent_entry(f.target, f.reason, f.check, opts.prune, f.entity)]  # type: ignore[arg-type]


def _worktree(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]]:
    return [Action(ActionKind.REMOVE_WORKTREE, f.target, f.entity, f.reason, f.check)]


def _counter(f: Finding, a: Analysis, opts: Options) -> list[Action[Any]]:
    return []  # counters are planned per file, after every entry change is known (_counters)


def _after(
    records: tuple[AgentRecord, ...], marked: set[str], pruned: set[str], status: str
) -> tuple[AgentRecord, ...]:
    return tuple(r.marked(status) if r.id in marked else r for r in records if r.id not in pruned)


def _attached_session(action: Action[Any], a: Analysis, opts: Options) -> str | None:
    target = action.target
    if isinstance(target, SessionTarget) and target.attached and not opts.kill_attached:
        who = ", ".join(a.tmux.clients_of(target.server, target.name)) or f"{target.attached} client(s)"
        return f"{action.entity} has a person attached ({who}); pass --kill-attached to kill it anyway"
    return None


def _attached_pane(action: Action[Any], a: Analysis, opts: Options) -> str | None:
    target = action.target
    if not isinstance(target, (PaneTarget, ServerTarget)) or opts.kill_attached:
        return None
    if who := a.tmux.attached_to(target):
        return f"{action.entity}: a person is attached to {who}; pass --kill-attached to kill it anyway"
    return None


def _owner_writes(action: Action[Any], a: Analysis, opts: Options) -> str | None:
    """The manager's own process owns the file: never rewritten while it may be alive."""
    agent = a.records.agent(action.target.id) if action.kind.entry else None
    if agent is not None and agent.owner is not None and a.owned.owner_alive(agent.owner) is not False:
        return (f"{action.entity}: its owner (pid {agent.owner.pid}, the team's lead) is alive or cannot be "
                "proven dead, and writes its records itself; left to it")
    return None


def _server_down(action: Action[Any], a: Analysis, opts: Options) -> str | None:
    if action.kind.entry and a.tmux.stopped_servers and not opts.allow_server_down:
        names = ", ".join(s.label for s in a.tmux.stopped_servers)
        return (
            f"{action.entity}: tmux server {names} is not running, so every agent looks dead (right --tmux-socket? "
            "right user?); pass --allow-server-down to change its entry anyway"
        )
    return None


def _claimed_by_two(action: Action[Any], a: Analysis, opts: Options) -> str | None:
    """A process another manager of this run claims too is a conflict for a person: nothing of this plan ends it."""
    target = action.target
    ends = ended_pids([action]) | ({r.pid for r in target.roots} if isinstance(target, SessionTarget) else set())
    if claimed := sorted(ends & opts.spared):
        return (f"{action.entity}: would end pid {claimed[0]}, which two managers of this run claim (a conflict, "
                "see accounted_for); never acted on")
    if shared := sorted(_touched_sessions(action, opts.spared_sessions)):
        return (f"{action.entity}: session {shared[0]} is recorded by two managers of this run (a conflict, see "
                "accounted_for); neither kills it or marks its records")
    return None


def _touched_sessions(action: Action[Any], spared: frozenset[tuple[str, str]]) -> set[str]:
    """The spared sessions an action kills (its session, its server's) or whose record it changes (by name: a
    record names no server)."""
    target = action.target
    if isinstance(target, ServerTarget):
        return {name for server, name in spared if server == target.server}
    names = {name for _, name in spared}
    if isinstance(target, SessionTarget):
        return {target.name} & names
    return {target.session} & names if isinstance(target, AgentTarget) else set()


# why an action waits for a flag (or, claimed by two managers, for a person), in turn
HOLDS = (_claimed_by_two, _attached_session, _attached_pane, _owner_writes, _server_down)


def _hold(p: Planning, _: str) -> None:
    """Actions that wait for an explicit flag leave the plan, each with why."""
    for action in p.actions.values():
        if why := next(filter(None, (hold(action, p.analysis, p.opts) for hold in HOLDS)), None):
            p.plan.held.append(Held(action, why))
    held = {h.action.key for h in p.plan.held}
    p.drop(lambda action: action.key in held)


def _with_kept_sessions(p: Planning, _: str) -> None:
    """An entry whose session kill is held back stays as it is."""
    kept = {a.target.name for a in p.actions.values() if a.kind is ActionKind.KILL_SESSION}
    p.drop(lambda action: action.follows is not None and action.target.session not in kept)


def _servers_take_panes(p: Planning, _: str) -> None:
    """A server that goes whole takes its panes with it: one action, verified once."""
    servers = {a.target.server for a in p.actions.values() if a.kind is ActionKind.KILL_SERVER}
    p.drop(lambda action: action.kind is ActionKind.KILL_PANE and action.target.server in servers)


def _history_prunes(p: Planning, _: str) -> None:
    """--prune (the seed's mode): every entry without a live session goes to the archive, not only ghosts."""
    if not (p.writable and p.opts.prune and not p.plan.blocked):
        return
    analysis = p.analysis
    killed = {a.target.name for a in p.actions.values() if a.kind is ActionKind.KILL_SESSION}
    for agent in analysis.records.agents.values():
        live = agent.session in analysis.tmux.sessions and agent.session not in killed
        if live or not agent.terminal or agent.session in analysis.tmux.other_sessions:
            continue  # ghosts came through their check; unknown statuses are left to a person
        p.add(_agent_entry(AgentTarget(agent.id, agent.session), "finished, no live session (--prune)", "prune", True))


def _scopes_left(p: Planning, check: str) -> None:
    """A scope whose owner is dead becomes stale once the plan ends every process running its records: archive it
    in the same plan (re-verified as stale at that moment), and leave its records unmarked (they go with it)."""
    analysis, ended = p.analysis, ended_pids(p.actions.values())
    archived = {a.target.path for a in p.actions.values() if a.kind is ActionKind.ARCHIVE_SCOPE}
    for scope in analysis.owned.scopes:
        if analysis.owned.owner_alive(scope.owner) is not False:
            continue
        running = {proc.pid for r in scope.agents for proc in analysis.owned.carriers.get(r.id, ())}
        if str(scope.path.parent) not in archived and running and running <= ended:
            noun = analysis.snapshot.registries.dialect.nouns[1]
            target = ScopeTarget(str(scope.path.parent), scope.label, scope.digest)
            p.add(Action(ActionKind.ARCHIVE_SCOPE, target, f"{noun} {scope.label}",
                         "its lead is dead and this plan ends every member still running", check))
            archived.add(target.path)
    ids = {r.id for s in analysis.owned.scopes if str(s.path.parent) in archived for r in s.agents}
    p.drop(lambda action: action.kind.entry and action.target.id in ids)


def ended_pids(actions: Iterable[Action[Any]]) -> set[int]:
    """The processes the actions end: each one's root, a pane's process, every pane process of a server."""
    ended = set()
    for action in actions:
        target = action.target
        if isinstance(target, ProcessTarget):
            ended.add(target.pid)
        elif isinstance(target, PaneTarget) and target.root is not None:
            ended.add(target.root.pid)
        elif isinstance(target, ServerTarget):
            ended |= {p.root.pid for p in target.panes if p.root is not None}
    return ended


def _counters(p: Planning, check: str) -> None:
    """Counters last, computed from the entries as they will be after the planned entry changes; a waived one is
    never planned."""
    if p.plan.blocked:
        return
    marked, pruned = entry_ids(p.actions.values())
    records = p.analysis.snapshot.registries
    status = records.dialect.mark.status if records.dialect.mark else ""
    for file in records.scopes:
        after = _after(file.agents, marked, pruned, status)
        expected = records.dialect.expected(file.kind, after, len(file.task_ids))
        changes = {k: v for k, v in expected.items() if k in file.counters and file.counters[k] != v
                   and CounterTarget(str(file.path), k) not in p.plan.waived}
        if changes:
            detail = ", ".join(f"{k} {file.counters[k]} → {v}" for k, v in changes.items())
            p.add(Action(ActionKind.SET_COUNTERS, FileTarget(str(file.path)), _label(records.workspace, file.path),
                         "computed from the entries as they will be", check, detail))


# The built-in checks' fixers (a plugin's come through `registry.add(..., fixer=...)`), and the rules over the
# whole plan, in the order they run, each with the check it belongs to: run when that check is selected, the actions
# it adds verified against that check's findings ("": every plan, adding none). Besides counters_selected, these
# two tables are the only place this module names a check.
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
    LEAKED_WORKTREES: _worktree,
}.items():
    REGISTRY.attach(_check, _fixer)
RULES: tuple[tuple[str, Rule], ...] = (
    (GHOST_AGENTS, _history_prunes),
    ("", _hold),
    ("", _with_kept_sessions),
    ("", _servers_take_panes),
    (STALE_SCOPES, _scopes_left),
    (COUNTERS, _counters),
)


def make_plan(analysis: Analysis, results: Results, opts: Options | None = None) -> Plan:
    """Every selected check's findings through its fixer, then the rules over the whole plan, in order."""
    p = Planning(analysis, opts or Options(), Plan(waived=waived_counters(results)))
    for check, result in results.items():
        if p.selects(check):
            p.take(check, result)
    for check, rule in RULES:
        if not check or p.selects(check):
            rule(p, check)
    p.plan.actions = sorted(p.actions.values(), key=lambda a: a.kind.order)
    return p.plan


def counters_selected(opts: Options) -> bool:
    return opts.selected is None or COUNTERS in opts.selected


def entry_ids(actions: Iterable[Action[Any]]) -> tuple[set[str], set[str]]:
    """The agent ids the actions mark terminated, and those they prune."""
    actions = list(actions)
    return (
        {a.target.id for a in actions if a.kind is ActionKind.MARK_TERMINATED},
        {a.target.id for a in actions if a.kind is ActionKind.PRUNE_ENTRY},
    )


def waived_counters(results: Results) -> frozenset[CounterTarget]:
    """The counters whose findings a person waived: the writers are told them, typed, and leave them as they are."""
    return frozenset(f.target for r in results.values() for f in r.waived if isinstance(f.target, CounterTarget))


def _label(workspace: Path, path: Path) -> str:
    return str(path.relative_to(workspace)) if path.is_relative_to(workspace) else str(path)
