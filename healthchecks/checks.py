"""The invariants: pure functions from an Analysis to findings.

Each check declares what it needs ("registry", "tmux"); when a need is unmet the check is not
judged at all (skipped for a broken registry, errored for unreachable tmux), because judging on
missing facts is how "tmux is down" turns into "every agent is a ghost".
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, ValuesView
from dataclasses import dataclass, replace
from datetime import date, datetime
from itertools import accumulate, chain, compress, repeat
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

from . import processes
from .analysis import Agent, Analysis, LiveSession
from .dialect import Dialect, ScopeKind, StatusClass
from .programs import CLAUDE, AgentProgram
from .records import (
    RECORD_TIMES,
    JobRecord,
    Scope,
    Service,
    may_be_after,
)
from .results import CheckResult, Finding, Results, Severity
from .sources import manager_name
from .targets import (
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
from .text import for_people
from .tmux import Pane, State, TmuxServer
from .waivers import Waiver

if TYPE_CHECKING:  # for the type checker only: this package never imports fixers
    from fixers.plan import Fixer

Judge = Callable[[Analysis], list[Finding]]


@dataclass(frozen=True)
class Check:
    """An invariant: its id (used everywhere: markers, outputs, fixers), what it needs, how to judge it, and
    optionally the fixer that turns its failing findings into actions (fixers.plan)."""

    id: str
    title: str
    needs: frozenset[str]
    judge: Judge
    fixer: Fixer | None = None


class CheckRegistry:
    """Every check of this run by id: the built-in ones, and those plugins and conftest.py files add through the
    `pytest_healthchecks_register` hook (judged, reported and fixed like the built-in ones)."""

    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}

    def add(self, id: str, title: str, judge: Judge, needs: tuple[str, ...] = (), fixer: Fixer | None = None) -> Judge:
        if unknown := set(needs) - NEEDS:
            raise ValueError(f"check {id}: unknown needs {sorted(unknown)} (known: {sorted(NEEDS)})")
        self.checks[id] = Check(id, title, frozenset(needs), judge, fixer)
        return judge

    def attach(self, id: str, fixer: Fixer) -> None:
        """Give a check its fixer (fixers.plan attaches the built-in ones: this package never imports fixers)."""
        self.checks[id] = replace(self.checks[id], fixer=fixer)

    def check(self, id: str, title: str, needs: tuple[str, ...] = ()) -> Callable[[Judge], Judge]:
        """Decorator form of add()."""
        return lambda judge: self.add(id, title, judge, needs)

    def __getitem__(self, id: str) -> Check:
        return self.checks[id]

    def __contains__(self, id: object) -> bool:
        return id in self.checks

    def values(self) -> ValuesView[Check]:
        return self.checks.values()


NEEDS = frozenset({"registry", "tmux"})
# The built-in checks' ids: every module of this package names one by these (never a literal); markers and waivers of a
# person's own use the text.
REGISTRY_SCHEMA = "registry_schema"
COUNTERS = "counters"
REGISTRY_AGREEMENT = "registry_agreement"
KNOWN_STATUSES = "known_statuses"
TIMESTAMPS = "timestamps"
GHOST_AGENTS = "ghost_agents"
SPLIT_BRAIN = "split_brain"
ZOMBIE_SESSIONS = "zombie_sessions"
LEAKED_SESSIONS = "leaked_sessions"
ORPHAN_PROCESSES = "orphan_processes"
ORPHANED_AGENTS = "orphaned_agents"
DUPLICATE_AGENTS = "duplicate_agents"
STALE_SCOPES = "stale_scopes"
LEAKED_SERVERS = "leaked_servers"
STALE_PID_FILES = "stale_pid_files"
LEAKED_WORKTREES = "leaked_worktrees"
# A live daemon respawns a dead agent ~10 s later and rewrites its roster then (DOMAIN.md): an agent dead while the
# roster has not changed for this long is not being respawned.
RESPAWN_BOUND = 60.0
ACCOUNTED_FOR = "accounted_for"
REGISTRY = CheckRegistry()
CHECKS = REGISTRY  # the built-in checks and any registered since
check = REGISTRY.check


def unmet(check: Check, analysis: Analysis) -> CheckResult | None:
    """A skip (registry unusable) or error (tmux unreachable) result when a check cannot be judged."""
    snap = analysis.snapshot
    if "registry" in check.needs and not snap.registries.ok:
        first = snap.registries.all_errors[0]
        return CheckResult(check.id, "skip", f"registry unusable: {first}")
    if "tmux" in check.needs and not snap.tmux_ok:
        return CheckResult(check.id, "error", "tmux unreachable, cannot judge: " + "; ".join(snap.tmux_errors))
    return None


def judge(analysis: Analysis) -> Results:
    """Every check's result on this snapshot, with the waivers of its settings applied."""
    waivers = analysis.settings.waivers
    return {
        c.id: unmet(c, analysis)
        or CheckResult.judged_from(c.id, waive(with_programs(c.judge(analysis), analysis), waivers, analysis.now))
        for c in REGISTRY.values()
    }


def with_programs(findings: list[Finding], a: Analysis) -> list[Finding]:
    """Each finding on an agent, a session or a process names the agent program it concerns (Finding.program): one
    step for every check, a plugin's too, so that every output names it the same way."""
    return [f if f.program or not (name := _program_of(a, f.target)) else replace(f, program=name) for f in findings]


def _program_of(a: Analysis, target: Target) -> str:
    """The program a finding's entity concerns: the one its process runs (the same process: pid and start), the one
    its agent's record, or its session's agents' records, name by this run's table; "" when none is known."""
    program: AgentProgram | None = None
    if isinstance(target, ProcessTarget):
        proc = a.snapshot.by_pid.get(target.pid)
        program = proc.program if proc is not None and proc.start_ticks == target.start_ticks else None
    elif isinstance(target, AgentTarget):
        program = recorded(a, [agent] if (agent := a.records.agent(target.id)) else [])
    elif isinstance(target, SessionTarget):
        program = recorded(a, a.tmux.agents_on(target.server, target.name))
    return program.name if program is not None else ""


def recorded(a: Analysis, agents: list[Agent]) -> AgentProgram | None:
    """The program these agents' records name (AgentRecord.program, by this run's table), when they name one."""
    found = {a.settings.programs.named(agent.records[0].program) for agent in agents}
    return next(iter(found)) if len(found) == 1 else None


def waive(findings: list[Finding], waivers: tuple[Waiver, ...], now: float) -> list[Finding]:
    """A failing finding that an unexpired waiver matches becomes "waived" (never failing, never acted on);
    one whose waiver has expired stays failing and says so."""
    if not waivers:
        return findings
    today = date.fromtimestamp(now)
    result = []
    for f in findings:
        match = next((w for w in waivers if f.severity == "fail" and w.matches(f.check, f.entity)), None)
        if match is None:
            result.append(f)
        elif match.expired(today):
            note = f"waiver expired on {match.expires.isoformat()} ({match.reason}; {match.source}); no longer applied"
            result.append(replace(f, waiver=note))
        else:
            note = f"waived until {match.expires.isoformat()}: {match.reason} ({match.source})"
            result.append(replace(f, severity="waived", waiver=note))
    return result


def agent_finding(
    check_id: str, agent: Agent, reason: str, severity: Severity = "fail", noun: str = "agent"
) -> Finding:
    """A finding on one record, named in its manager's terms (``noun``: agent, member)."""
    return Finding(check_id, f"{noun} {agent.id}", reason, severity, AgentTarget(agent.id, agent.session))


def session_finding(
    check_id: str, a: Analysis, session: LiveSession, reason: str, severity: Severity = "fail"
) -> Finding:
    """A finding on one live session, identified as a fixer must re-verify it."""
    roots = a.tmux.roots(session)
    target = SessionTarget(session.server, session.id, session.name, session.created, roots, a.tmux.attached(session))
    return Finding(check_id, f"session {session.name}", reason, severity, target)


def owned_elsewhere(check_id: str, a: Analysis, session: LiveSession, reason: str) -> Finding:
    """A failing session finding, or information when the session's processes belong to another workspace."""
    if found := a.attribution.elsewhere(session):
        why = f"{reason}; but {'; '.join(found)}: another workspace's session, left alone"
        return session_finding(check_id, a, session, why, "info")
    return session_finding(check_id, a, session, reason)


@check(REGISTRY_SCHEMA, "registry files parse and match their JSON Schemas")
def registry_schema(a: Analysis) -> list[Finding]:
    """Every registry file is strict UTF-8 JSON that matches the shipped schema."""
    regs = a.snapshot.registries
    findings = []
    for problem in regs.all_errors:
        findings.append(Finding(REGISTRY_SCHEMA, problem.file, problem.reason, target=FileTarget(problem.file)))
    if not a.snapshot.stable:
        reason = (
            f"kept changing through {a.snapshot.attempts} reads (a writer that takes no lock?): judged on the last "
            "read; every action is re-verified before it is taken"
        )
        findings.append(Finding(REGISTRY_SCHEMA, "registry", reason, severity="info"))
    return findings


_COUNTERS, _AGENTS = attrgetter("counters"), attrgetter("agents")
_RECORDS, _FRACTION = attrgetter("records"), itemgetter(slice(19, 20))
_ACTIVE, _TERMINAL = attrgetter("active"), attrgetter("terminal")  # an agent's, read in C
_STOPPED = StatusClass.STOPPED  # (read through its class, an enum member costs EnumType's lookup: once, here)


def _count_findings(file: Scope, expected: dict[str, int]) -> list[Finding]:
    counted = file.counters
    wrong = [(name, value) for name, value in expected.items() if name in counted and counted[name] != value]
    if not wrong:
        return []  # the common case: no label made (a path's parent, for every scope of every snapshot)
    label = file.label
    return [
        Finding(
            COUNTERS,
            f"{label} {name}",
            f"says {file.counters[name]}, entries say {value}",
            target=CounterTarget(str(file.path), name, label),
        )
        for name, value in wrong
    ]


@check(COUNTERS, "registry counters match the entries", ("registry",))
def counters(a: Analysis) -> list[Finding]:
    """Counters the orchestrator forgets to decrement drift from what the entries say, by the meaning the
    records' own era gives them (its dialect)."""
    regs = a.snapshot.registries
    dialect = regs.dialect
    return [
        f
        for file in _miscounted(regs.scopes, dialect, regs.columns.classes)
        for f in _count_findings(file, dialect.expected(file.kind, file.agents, len(file.task_ids)))
    ]


def _miscounted(scopes: tuple[Scope, ...], dialect: Dialect, classes: list[StatusClass]) -> list[Scope]:
    """The scopes (in order) a counter of which differs from what their entries say: every scope of a kind compared
    at once, in C (the common case: none). ``classes``: every scope's records' classes end to end (records.Columns),
    sliced for a kind whose scopes stand together rather than read again."""
    kinds: dict[ScopeKind, list[int]] = {}
    for i, scope in enumerate(scopes):
        kinds.setdefault(scope.kind, []).append(i)
    ends = list(accumulate(map(len, map(_AGENTS, scopes)), initial=0))
    wrong: set[int] = set()
    for kind, places in kinds.items():
        group = [scopes[i] for i in places]
        first, last = places[0], places[-1]
        column = classes[ends[first]:ends[last + 1]] if last - first < len(places) else None
        expected = dialect.expected_each(kind, [s.agents for s in group], [len(s.task_ids) for s in group], column)
        for name, values in expected.items():  # a counter a scope does not store is never wrong
            stored = list(map(dict.get, map(_COUNTERS, group), repeat(name), values))
            if stored != values:
                wrong.update(i for i, held, value in zip(places, stored, values, strict=True) if held != value)
    return [scopes[i] for i in sorted(wrong)]


@check(REGISTRY_AGREEMENT, "task registries agree with the global registry", ("registry",))
def registry_agreement(a: Analysis) -> list[Finding]:
    """Every task-registry agent is in the global registry, under the same task, in the same class."""
    findings: list[Finding] = []
    if not a.snapshot.registries.dialect.members_repeat_authority:
        return findings  # its member scopes are stores of their own, not copies to agree
    if a.records.index.agree:  # the common case, decided in C
        return findings
    global_ids = a.records.index.authority
    for file in a.snapshot.registries.members:
        for rec in file.agents:
            glob = global_ids.get(rec.id)
            if glob is None:
                reason = f"listed in {file.label} but missing from the global registry"
            elif glob.task_id != rec.task_id:
                reason = f"task {rec.task_id} in {file.label}, task {glob.task_id} in the global registry"
            elif glob.status_class is not rec.status_class:
                reason = (
                    f"{rec.status_class} ({rec.status}) in {file.label}, "
                    f"{glob.status_class} ({glob.status}) in the global registry"
                )
            else:
                continue
            findings.append(agent_finding(REGISTRY_AGREEMENT, a.records.known(rec.id), reason))
    return findings


@check(KNOWN_STATUSES, "every agent status is a known one", ("registry",))
def known_statuses(a: Analysis) -> list[Finding]:
    """An unknown status is neither active nor terminal, so no other check can judge that agent."""
    unknown = StatusClass.UNKNOWN
    if unknown not in a.snapshot.registries.columns.classes:
        return []  # the common case, decided in C (one walk of every scope's records' classes)
    return [
        agent_finding(KNOWN_STATUSES, a.records.known(aid), f"unknown status {rec.status!r} ({rec.source} registry)")
        for aid, records in a.records.index.items()
        for rec in records
        if rec.status_class is StatusClass.UNKNOWN
    ]


@check(TIMESTAMPS, "no registry timestamp lies in the future", ("registry",))
def timestamps(a: Analysis) -> list[Finding]:
    """A start or end time past now (beyond the grace) means another time zone or a skewed clock.

    Such an agent would be "just started" for ever and never judged; the grace no longer protects it,
    and this says why its times cannot be trusted (see --registry-tz). Only the agents whose grace
    is consulted are looked at: active ones (ghosts) and those with a live session (leaked).
    """
    limit = datetime.fromtimestamp(a.now + a.settings.grace, a.tz).strftime("%Y-%m-%dT%H:%M:%S")
    findings: list[Finding] = []
    live = [agent for name in a.tmux.sessions for agent in a.records.agents_by_session.get(name, ())
            if not agent.active]
    agents = [*a.records.active_agents, *live]
    if not _any_after(agents, limit):
        return findings  # the common case, decided in C
    for agent in agents:
        if not any(may_be_after(t, limit) for r in agent.records for t in r.times):
            continue  # the common case, decided without parsing a time
        for what, moment in (("started", agent.started_at(a.tz)), ("ended", agent.ended_at(a.tz))):
            if moment is not None and moment - a.now >= a.settings.grace:
                ahead = moment - a.now
                reason = (
                    f"{what} {ahead:.0f}s in the future: the orchestrator's time zone or clock differs "
                    "from this machine's (set --registry-tz)"
                )
                findings.append(agent_finding(TIMESTAMPS, agent, reason))
                break
    return findings


def _any_after(agents: list[Agent], limit: str) -> bool:
    """Whether a time of these agents' records may lie after ``limit`` (records.may_be_after of any), decided in C
    when every time written is a naive one as Python writes it (what may_be_after compares as a string)."""
    written = _written(list(chain.from_iterable(map(RECORD_TIMES, chain.from_iterable(map(_RECORDS, agents))))))
    if set(map(len, written)) <= {19, 26} and set(map(_FRACTION, written)) <= {"", "."}:
        return max(written, default="") > limit
    return any(map(may_be_after, written, repeat(limit)))


def _written(times: list[Any]) -> list[str]:
    """The strings among the times, in order. Most times are unset (None: three of a record's four): the set ones
    are picked by their truth in C, and only they are asked whether they are strings, when every unset one is None
    (no empty string among them, which is falsy too)."""
    present = list(compress(times, times))
    if times.count(None) + len(present) == len(times) and all(map(isinstance, present, repeat(str))):
        return present
    return list(compress(times, map(isinstance, times, repeat(str))))


def _not_running_hint(a: Analysis) -> str:
    stopped = a.tmux.stopped_servers
    if not stopped:
        return ""
    names = ", ".join(s.label for s in stopped)
    return f" (tmux server {names} is not running: right --tmux-socket? right user?)"


@check(GHOST_AGENTS, "no ghost agents (active in the registry, session gone)", ("registry", "tmux"))
def ghost_agents(a: Analysis) -> list[Finding]:
    """An active entry past grace whose tmux session is live on no checked server."""
    findings = []
    hint = _not_running_hint(a)
    noun = a.snapshot.registries.dialect.nouns[0]
    stale = {s.name for s in stale_scopes_of(a)}
    for agent in a.records.active_agents:
        if (job := agent.records[0].ext(JobRecord)) is not None:  # Claude Code's background job: judged by its agents
            if a.past_grace(agent.started_at(a.tz)) and (why := _job_gone(a, agent.id, job)):
                findings.append(agent_finding(GHOST_AGENTS, agent, f"{_job_name(job)} recorded "
                                              f"{agent.records[0].status}, {why}", noun=noun))
            continue
        if agent.pane is not None:  # placed by a pane id on one server: the pane must hold a process carrying it
            judged = agent.records[0].task_id not in stale and a.past_grace(agent.started_at(a.tz))
            if judged and (why := a.owned.pane_problem(agent)):
                findings.append(agent_finding(GHOST_AGENTS, agent, f"recorded active, {why}", noun=noun))
            continue
        if a.tmux.session_of(agent) is not None or not a.past_grace(agent.started_at(a.tz)):
            continue
        if agent.cursor_pid is not None:  # E3's cursor backend: judged by its process, it has no session
            if why := _cursor_gone(a, agent):
                findings.append(agent_finding(GHOST_AGENTS, agent, f"registry says active, {why}"))
            continue
        if not agent.certain:
            reason = (
                f"session {agent.session!r} is not live under that name, but tmux rewrites such a name (it expands "
                "`#` formats; other characters depend on its locale): it cannot be matched with certainty; left alone"
            )
            findings.append(agent_finding(GHOST_AGENTS, agent, reason, "info"))
        elif agent.server is None and (elsewhere := a.tmux.other_sessions.get(agent.session)):
            # (a record naming its own server, a Gas Town town's, is that server's: the name elsewhere is another's)
            reason = f"session {agent.session} lives on tmux server {elsewhere[0].server}, which is not checked here"
            findings.append(agent_finding(GHOST_AGENTS, agent, reason + "; left alone", "info"))
        else:
            reason = f"registry says active, session {agent.session} is not live{hint}"
            findings.append(agent_finding(GHOST_AGENTS, agent, reason))
    # a part of the records not read (Gas Town's beads ledger without `bd`): its ghosts are not looked for
    findings += [Finding(GHOST_AGENTS, what, f"not read: {why}", "info")
                 for scope in a.snapshot.registries.scopes for what, why in scope.unread]
    return findings


def _alive(a: Analysis, pid: int, ticks: int | None) -> bool:
    """The process of this identity (pid + start ticks) runs now."""
    return a.snapshot.running(pid, ticks) is not None


def _job_name(job: JobRecord) -> str:
    """A job's name as a person gave it (its prompt), escaped and bounded."""
    return f"({for_people(job.name)[:60]!r})" if job.name else "(unnamed)"


def _job_gone(a: Analysis, short: str, job: JobRecord) -> str | None:
    """Why a background job recorded at work is a ghost, or None: no agent its files name (pid + start ticks) runs,
    and no live daemon is respawning it (the daemon is dead, has no roster entry for it, or has not changed the
    roster for RESPAWN_BOUND)."""
    if any(_alive(a, pid, ticks) for pid, ticks in job.agents):
        return None
    service = a.snapshot.registries.authority.service
    daemon = service.daemon if service else None
    agents = ", ".join(f"pid {pid}" for pid, _ in job.agents) or "none named"
    if daemon is not None and _alive(a, daemon.pid, daemon.start_ticks):
        if job.roster_changed is not None and a.now - job.roster_changed < RESPAWN_BOUND:
            return None  # its daemon may be respawning it (attempt + 1)
        why = (f"its daemon (pid {daemon.pid}) has not respawned it in {RESPAWN_BOUND:.0f} s (attempt {job.attempt})"
               if job.attempt is not None else f"its daemon (pid {daemon.pid}) has no roster entry for it")
    else:
        why = "no daemon runs to respawn it" + (f" (daemon.lock names pid {daemon.pid}, dead)" if daemon else "")
    return f"its agent is not running ({agents}), and {why}; `claude stop {short}` ends it"


def _cursor_gone(a: Analysis, agent: Agent) -> str | None:
    """Why the agent's `cursor_pid` does not prove it alive, or None. A PID is reused: it proves the agent only if
    that process started before the entry did (plus the grace) and runs the program its record names (cursor-agent,
    by the programs table: its launcher or its bundled node)."""
    pid = agent.cursor_pid
    proc = a.snapshot.by_pid.get(pid) if pid is not None else None
    if proc is None or proc.defunct:
        return f"its cursor process {pid} is gone"
    started = agent.started_at(a.tz)
    if started is None or processes.started_at(proc, a.snapshot.boot_time) > started + a.settings.grace:
        return f"pid {pid} now belongs to a process ({proc.name}) that started after the agent did"
    expected = a.settings.programs.named(agent.records[0].program)
    if expected is None or proc.program is not expected:
        return f"pid {pid} now belongs to {proc.name}, not {expected.name if expected else 'an agent program'}"
    return None


@check(SPLIT_BRAIN, "no agent runs in two places at once", ("registry", "tmux"))
def split_brain(a: Analysis) -> list[Finding]:
    """One agent's session live with Claude on two checked servers: which one is real is for a person."""
    running = {
        name: [s.server for s in group if (s.server, s.name) in a.attribution.sessions_with_claude]
        for name, group in a.tmux.sessions.items()
        if len(group) > 1
    }
    return [
        agent_finding(SPLIT_BRAIN, agent, f"session {name} runs Claude on tmux servers {', '.join(servers)}; "
                      "never acted on automatically")
        for name, servers in running.items()
        if len(servers) > 1
        for agent in a.records.agents_by_session.get(name, [])
    ]


@check(ZOMBIE_SESSIONS, "no zombie sessions (agent session without Claude)", ("registry", "tmux"))
def zombie_sessions(a: Analysis) -> list[Finding]:
    """A live session of an active agent, past grace, whose panes (its manager's agent pane, when it names one: the
    dialect's agent_pane) are dead or run only known idle processes.

    A pane running another recognised agent program (programs.py: Codex, Gemini CLI, ...) is a working agent. A pane
    running anything else (healthchecks.idle) is information: the absence of a match is no evidence that the agent
    is gone, since Claude may run under a name no matcher knows.
    """
    findings = []
    tmux, own = a.tmux, a.tmux.own_sessions  # (asked once, not once a session)
    # every pane is the agent's (no agent pane named): Claude in it is one lookup (attribution.claude_in's)
    whole, with_claude = a.snapshot.registries.dialect.agent_pane is None, a.attribution.sessions_with_claude
    for session in tmux.agent_sessions:
        agents = tmux.agents_in(session)
        if (key := (session.server, session.name)) in own:
            continue  # said once, by leaked_sessions
        # (pure tests, the cheapest first: Claude in its panes, the common case, answers at once)
        if (whole and key in with_claude) or not any(map(_ACTIVE, agents)) or not a.past_grace(session.created):
            continue
        panes = a.tmux.agent_panes(session)  # every pane, or the one its manager runs the agent in
        if not a.attribution.claude_in(session, panes) and a.tmux.agent_program(session, panes) is None:
            findings.append(_zombie(a, session, panes, _program_name(a, agents)))
    return findings


def _program_name(a: Analysis, agents: list[Agent]) -> str:
    """What the check calls the agent's program: the one its manager records launching (AgentRecord.program, named
    by this run's programs table), when it is another than Claude Code; else Claude."""
    program = recorded(a, agents)
    return "Claude" if program is None or program is CLAUDE else program.name


def _zombie(a: Analysis, session: LiveSession, panes: tuple[Pane, ...], program: str) -> Finding:
    """A session whose agent's panes run no agent program: a zombie when they are dead or idle and nothing else in
    the session works; information when something does (it may be the agent under another name, or a person's)."""
    if (busy := a.tmux.working(session, panes)) is not None:
        exe = busy.exe or "binary unreadable"
        reason = f"runs `{busy.name}` ({exe}), not recognised as {program}; left alone (tmux server {session.server})"
        return session_finding(ZOMBIE_SESSIONS, a, session, reason, "info")
    dead = all(p.dead for p in panes)
    what = "its panes are dead" if dead else "only idle ones: a shell, cat, tee, the notifier"
    if panes is not session.panes:  # its manager's agent pane only
        index = a.snapshot.registries.dialect.agent_pane
        what = f"its agent pane .{index} is " + ("gone" if not panes else "dead" if dead else "idle (a shell, cat)")
        if (other := a.tmux.working(session)) is not None:
            reason = (f"no {program} in its agent pane ({what}), but `{other.name}` (pid {other.pid}) works in another "
                      f"of its panes (a person's?); left alone (tmux server {session.server})")
            return session_finding(ZOMBIE_SESSIONS, a, session, reason, "info")
    reason = f"no {program} process in its panes ({what}) (tmux server {session.server})"
    return owned_elsewhere(ZOMBIE_SESSIONS, a, session, reason)


@check(LEAKED_SESSIONS, "no leaked sessions (agent finished, session still live)", ("registry", "tmux"))
def leaked_sessions(a: Analysis) -> list[Finding]:
    """A terminal entry whose session still runs; an untracked prefixed session is only information."""
    findings = []
    tmux, own, with_claude = a.tmux, a.tmux.own_sessions, a.attribution.sessions_with_claude  # (asked once)
    for session in tmux.agent_sessions:
        agents = tmux.agents_in(session)
        has_claude = (key := (session.server, session.name)) in with_claude
        if key in own:
            reason = "this health check runs inside it, so it is neither judged nor ever killed"
            findings.append(session_finding(LEAKED_SESSIONS, a, session, reason, "info"))
        elif not agents:  # a lost record when its manager lost it (claude-squad's unlocked writes): a person's call
            inside = "Claude runs inside" if has_claude else "no Claude inside"
            if (lost := a.attribution.lost_home(session)) is not None:
                reason = f"a lost record: no record names it, yet it works in {lost} of this store ({inside}); " \
                    "left alone"
            else:
                reason = f"untracked: no registry entry (may belong to another workspace; {inside}); left alone"
            findings.append(session_finding(LEAKED_SESSIONS, a, session, reason, "info"))
        elif stopped := [agent for agent in agents if agent.status_class is _STOPPED]:
            rows = ", ".join(f"{agent.id} {agent.records[0].status}" for agent in stopped)
            reason = (f"recorded as stopped ({rows}) yet its session runs: its manager reads that as started again "
                      "by hand; left alone")
            findings.append(session_finding(LEAKED_SESSIONS, a, session, reason, "info"))
        elif all(map(_TERMINAL, agents)) and all(a.past_grace(agent.ended_at(a.tz)) for agent in agents):
            reason = f"registry says {_ended(a, agents)}, session still live on tmux server {session.server}"
            findings.append(owned_elsewhere(LEAKED_SESSIONS, a, session, reason))
    return findings


def _ended(a: Analysis, agents: list[Agent]) -> str:
    """What the records say happened, in the manager's own terms when its dialect says what their status means
    (Dialect.ended), else `finished (<id> <status>, ...)`."""
    said = {a.snapshot.registries.dialect.ended.get(agent.records[0].status) for agent in agents}
    if len(said) == 1 and (meaning := said.pop()) is not None:
        return f"{meaning} for {', '.join(agent.id for agent in agents)}"
    return f"finished ({', '.join(f'{agent.id} {agent.records[0].status}' for agent in agents)})"


@check(ORPHAN_PROCESSES, "no orphan agent processes (Claude Code or another agent program)", ("registry", "tmux"))
def orphan_processes(a: Analysis) -> list[Finding]:
    """An agent program's process outside every tmux pane (a pair as one: its wrapper, carrying its child), or a
    program's leftover (Codex's daemons, a Gemini whose terminal is gone), with evidence exclusive to this workspace.

    Anything weaker (a foreign Claude, one that only names an agent, one on an unchecked server, a leftover nothing
    ties here) is information: listed with the evidence seen (a leftover with its age and CPU time), never acted on.
    """
    classes = a.attribution.claude_classes
    orphans = [
        Finding(
            ORPHAN_PROCESSES,
            f"pid {j.proc.pid}",
            f"{j.proc.name}: outside every tmux pane; {j.reason}",
            target=ProcessTarget(j.proc.pid, j.proc.start_ticks,
                                 tuple(ProcessTarget(c.pid, c.start_ticks) for c in j.carried)),
        )
        for j in classes["orphan"]
    ]
    foreign = [
        Finding(ORPHAN_PROCESSES, f"pid {j.proc.pid}", f"{j.proc.name}: outside every live pane, {j.reason}", "info",
                ProcessTarget(j.proc.pid, j.proc.start_ticks))
        for j in classes["foreign"]
    ]
    sheltering = {a.snapshot.in_tmux.get(p.pid) for p in a.attribution.claude}
    silent = [  # once per server, and only where it matters: a Claude process is below it
        Finding(ORPHAN_PROCESSES, f"tmux server {s.label}",
                f"process {s.server_pid}, named like a tmux server, is silent ({s.reason}): the Claude processes "
                "below it are left alone", "info")
        for s in a.snapshot.other_servers
        if s.silent and s.server_pid in sheltering
    ]
    return orphans + foreign + silent


def _owner_text(a: Analysis, scope: Scope) -> str:
    owner = scope.owner
    assert owner is not None
    proc = a.snapshot.by_pid.get(owner.pid)
    if proc is None:
        return f"its lead (pid {owner.pid}) is gone"
    return f"its lead's pid {owner.pid} now belongs to another process ({proc.name}, a later start time)"


def stale_scopes_of(a: Analysis) -> list[Scope]:
    """Scopes whose owner is proven dead and none of whose records runs anywhere any more."""
    return [
        s for s in a.owned.scopes
        if a.owned.owner_alive(s.owner) is False and not any(a.owned.carriers.get(r.id) for r in s.agents)
    ]


@check(ORPHANED_AGENTS, "no agents running on after their owner (a team's lead) died", ("registry", "tmux"))
def orphaned_agents(a: Analysis) -> list[Finding]:
    """A process carrying a record's id (the manager's id flag, exactly) whose scope's owner is proven dead
    (pid + start time): an orphan of that scope, wherever it runs. A live owner is never dead by a reused pid."""
    dialect = a.snapshot.registries.dialect
    noun, scope_noun = dialect.nouns
    findings = []
    for scope in a.owned.scopes:
        if a.owned.owner_alive(scope.owner) is not False:
            continue
        for record in scope.agents:
            for proc in a.owned.carriers.get(record.id, ()):
                target = a.tmux.pane_target(proc)
                where = f"pane {target.pane_id} of tmux server {target.server}" if isinstance(target, PaneTarget) else (
                    "outside every checked pane")
                reason = (f"{scope_noun} {scope.label}: {_owner_text(a, scope)}; pid {proc.pid} ({proc.name}) still "
                          f"runs with {dialect.id_flag} {record.id} in {where}")
                findings.append(Finding(ORPHANED_AGENTS, f"{noun} {record.id} (pid {proc.pid})", reason,
                                        target=target))
    return findings


@check(DUPLICATE_AGENTS, "no agent runs twice (two processes carrying one id)", ("registry", "tmux"))
def duplicate_agents(a: Analysis) -> list[Finding]:
    """Two live processes carrying the same record id: the one in the record's own place is the record's; each
    other one is a duplicate. When none is in its place, which is real is for a person."""
    dialect = a.snapshot.registries.dialect
    noun = dialect.nouns[0]
    findings = []
    for aid, procs in a.owned.carriers.items():
        agent = a.records.agent(aid)
        if len(procs) < 2 or agent is None:
            continue
        pane = a.owned.in_pane(agent)
        tree = set(processes.descendants(a.children, pane.pid)) if pane is not None and not pane.dead else set()
        named = [p for p in procs if p.pid in tree]
        if not named:
            pids = ", ".join(str(p.pid) for p in procs)
            reason = f"{len(procs)} processes carry {dialect.id_flag} {aid} (pids {pids}), none in its recorded place"
            findings.append(agent_finding(DUPLICATE_AGENTS, agent, reason + "; for a person", noun=noun))
            continue
        for proc in procs:
            if proc.pid not in tree:
                reason = (f"pid {proc.pid} ({proc.name}) also carries {dialect.id_flag} {aid}; the one in its recorded "
                          f"pane {agent.pane} is pid {named[0].pid}")
                findings.append(Finding(DUPLICATE_AGENTS, f"{noun} {aid} (pid {proc.pid})", reason,
                                        target=a.tmux.pane_target(proc)))
    return findings


@check(STALE_SCOPES, "no stale teams (lead dead, every member gone, directory left)", ("registry", "tmux"))
def stale_scopes(a: Analysis) -> list[Finding]:
    """A scope whose owner is proven dead and none of whose records runs any more: left behind (#32730)."""
    scope_noun = a.snapshot.registries.dialect.nouns[1]
    return [
        Finding(STALE_SCOPES, f"{scope_noun} {s.label}",
                f"{_owner_text(a, s)} and none of its {len(s.agents)} member(s) runs; {s.path.parent} is left behind",
                target=ScopeTarget(str(s.path.parent), s.label, s.digest))
        for s in stale_scopes_of(a)
    ]


def _server_owner_dead(a: Analysis, pid: int, server: TmuxServer) -> tuple[bool | None, str]:
    """Whether the owner a private server is named for is dead: by a scope's owner identity when one names it,
    else by the pid alone (gone, or started after the server: reused)."""
    for scope in a.owned.scopes:
        if scope.owner is not None and scope.owner.pid == pid:
            alive = a.owned.owner_alive(scope.owner)
            state = {True: "is alive", False: "is dead (pid + start time)", None: "cannot be proven dead"}[alive]
            noun = a.snapshot.registries.dialect.nouns[1]  # the manager's own word for a scope (a team)
            return (None if alive is None else not alive), f"{noun} {scope.label}'s lead (pid {pid}) {state}"
    proc = a.snapshot.by_pid.get(pid)
    serving = a.snapshot.by_pid.get(server.server_pid or -1)
    if proc is None or proc.defunct:
        return True, f"its lead (pid {pid}) is gone"
    if serving is not None and proc.start_ticks > serving.start_ticks:
        return True, f"pid {pid} belongs to a process started after the server (reused)"
    return None, f"pid {pid} is alive"


@check(LEAKED_SERVERS, "no leaked private tmux servers (claude-swarm-<lead pid> whose lead is dead)", ("tmux",))
def leaked_servers(a: Analysis) -> list[Finding]:
    """A manager's private server named for an owner that is proven dead. Acted on only when every pane in it is
    dead or runs a teammate of a team whose lead is dead: anything else in it may be a person's."""
    dialect = a.snapshot.registries.dialect
    if dialect.private_server is None:
        return []
    live_ids = {r.id for s in a.owned.scopes if a.owned.owner_alive(s.owner) is not False for r in s.agents}
    findings = []
    for server in a.snapshot.servers:
        match = dialect.private_server.fullmatch(os.path.basename(server.socket_path))
        if match is None or server.state is not State.RUNNING:
            continue
        dead, who = _server_owner_dead(a, int(match.group(1)), server)
        if not dead:
            continue
        panes, strangers = [], []
        for pane in server.panes:
            proc = a.snapshot.by_pid.get(pane.pid)
            carried = dialect.carried_id(proc.argv) if proc is not None and not pane.dead else None
            if pane.dead:
                panes.append(PaneTarget(server.label, server.server_pid, pane.pane_id, None))
            elif proc is not None and carried and carried not in live_ids:
                panes.append(PaneTarget(server.label, server.server_pid, pane.pane_id,
                                        ProcessTarget(proc.pid, proc.start_ticks), carried))
            else:
                strangers.append(f"{pane.pane_id} ({proc.name if proc else 'unknown'})")
        entity = f"server {os.path.basename(server.socket_path)}"
        if strangers:
            reason = (f"{who}, but pane(s) {', '.join(strangers)} run no teammate of a dead team (a person's?); "
                      "left alone")
            target = ServerTarget(server.label, server.server_pid)
            findings.append(Finding(LEAKED_SERVERS, entity, reason, "info", target))
        else:
            reason = f"{who}; its {len(panes)} pane(s) hold only teammates of dead teams (or are dead)"
            findings.append(Finding(LEAKED_SERVERS, entity, reason,
                                    target=ServerTarget(server.label, server.server_pid, tuple(panes))))
    return findings


def _moment(when: float) -> str:
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M:%S")


@check(STALE_PID_FILES, "no stale pid files (the recorded process dead, or its pid reused)", ("registry",))
def stale_pid_files(a: Analysis) -> list[Finding]:
    """A manager's pid file whose process is dead, or whose pid another process now holds (its start time differs,
    to the second: both come from the boot time, which may move by one). Never fixed here (the manager's files are
    its own): the finding names the manager's command that removes it. A bare pid (an older release) proves
    nothing: reported while its process lives, stale only once it is dead. Claude Code's background service's
    (daemon.lock, sessions/<pid>.json) are information only (_service_files)."""
    cleanup = a.snapshot.registries.dialect.tracked_cleanup
    hint = f"; {cleanup}" if cleanup else ""
    findings = []
    for tracked in (t for scope in a.snapshot.registries.scopes for t in scope.tracked):
        proc = a.snapshot.by_pid.get(tracked.pid)
        entity = f"pid file {os.path.basename(tracked.file)}"
        if tracked.pid <= 0:
            reason = "holds no `<pid>|<start>` nor `<pid>` (a torn write, a hand edit?); left to a person"
            findings.append(Finding(STALE_PID_FILES, entity, reason, "info", FileTarget(tracked.file)))
            continue
        if proc is None or proc.defunct:
            reason = f"records pid {tracked.pid} for session {tracked.session}, which is dead{hint}"
        elif tracked.started is None:
            reason = (f"holds a bare pid {tracked.pid} (an older release's: no start time), now {proc.name}: proves "
                      "nothing either way")
            findings.append(Finding(STALE_PID_FILES, entity, reason, "info", FileTarget(tracked.file)))
            continue
        elif tracked.started_as(processes.started_at(proc, a.snapshot.boot_time)):
            continue
        else:
            began = _moment(processes.started_at(proc, a.snapshot.boot_time))
            reason = (f"records pid {tracked.pid} started {_moment(tracked.started)}, but that pid is now {proc.name} "
                      f"started {began}: reused{hint}")
        findings.append(Finding(STALE_PID_FILES, entity, reason, target=FileTarget(tracked.file)))
    return findings + _service_files(a)


# --- Claude Code's own background service (`claude --bg`): what its files leave that no general check judges ----
def _service(a: Analysis) -> Service | None:
    return a.snapshot.registries.authority.service


@check(LEAKED_WORKTREES, "no leaked worktrees (a background session's, its agent dead and its job gone)",
       ("registry",))
def leaked_worktrees(a: Analysis) -> list[Finding]:
    """A `.claude/worktrees/NAME` still locked by its session's agent (pid + start ticks, from the lock) that is dead,
    whose job no longer exists: `claude rm` keeps the worktree, its branch and the lock. Fixed only when nothing can
    be lost (fixers.effects.remove_worktree re-checks it then); else the commands a person would run."""
    if (service := _service(a)) is None:
        return []
    jobs = {job.cwd for r in a.snapshot.registries.authority.agents if (job := r.ext(JobRecord))}
    findings = []
    for tree in service.worktrees:
        if tree.path in jobs or _alive(a, tree.pid, tree.start_ticks):
            continue
        unlock, remove = (f"git -C {tree.repo!r} worktree {verb} {tree.path!r}" for verb in ("unlock", "remove"))
        branch = f"branch {for_people(tree.branch) or '(detached)'}"
        target = WorktreeTarget(tree.repo, tree.path, tree.pid, tree.start_ticks, tree.branch)
        entity = f"worktree {for_people(tree.name)}"
        if not tree.pid:  # unlocked: a person's `claude -w` worktree may be kept on purpose; nothing proves whose
            reason = (f"no job works in it and it is not locked, so nothing proves which session made it ({branch}); "
                      f"left to a person, who would run: {for_people(remove)}")
            findings.append(Finding(LEAKED_WORKTREES, entity, reason, "info", target))
            continue
        reason = (f"session {for_people(tree.name)!r}: locked by its agent (pid {tree.pid} start {tree.start_ticks}), "
                  f"dead, and its job is gone; {branch} is kept; a person would run: "
                  f"{for_people(f'{unlock} && {remove}')}")
        findings.append(Finding(LEAKED_WORKTREES, entity, reason, target=target))
    return findings


def _service_files(a: Analysis) -> list[Finding]:
    """Claude Code's background service's own pid files, information only (its files, its processes): daemon.lock
    naming a dead daemon (pid + procStart) while its sessions still run (re-parented to pid 1; the next `claude
    --bg` adopts them), and how many sessions/<pid>.json name a dead Claude (pid + procStart): harmless."""
    if (service := _service(a)) is None:
        return []
    findings = []
    daemon = service.daemon
    running = [pid for _, pid, ticks, kind, _ in service.sessions if kind == "bg" and _alive(a, pid, ticks)]
    if daemon is not None and not _alive(a, daemon.pid, daemon.start_ticks) and running:
        reason = (f"names pid {daemon.pid}, Claude Code's background daemon, which is dead, while {len(running)} "
                  f"background session(s) still run (pid {', '.join(map(str, running[:10]))}); the next "
                  "`claude --bg` adopts them")
        lock = FileTarget(os.path.join(a.workspace, "daemon.lock"))
        findings.append(Finding(STALE_PID_FILES, "pid file daemon.lock", reason, "info", lock))
    stale = [file for file, pid, ticks, *_ in service.sessions if not _alive(a, pid, ticks)]
    if stale:
        names = ", ".join(os.path.basename(f) for f in stale[:5]) + (", ..." if len(stale) > 5 else "")
        reason = (f"{len(stale)} sessions/<pid>.json name a dead Claude (pid + procStart): {names}; "
                  f"{a.snapshot.registries.dialect.tracked_cleanup}")
        findings.append(Finding(STALE_PID_FILES, "sessions files", reason, "info",
                                FileTarget(os.path.join(a.workspace, "sessions"))))
    return findings


Claims = dict[int, str]  # pid -> how one manager claims that agent process
NOBODY = "nobody"  # the manager of a finding on an agent process no manager and no person accounts for


def agent_processes(a: Analysis) -> list[processes.Proc]:
    """Every running agent program's process (Claude Code and the programs table's) and every program's leftover
    (Codex's daemons), this suite's own left out."""
    return a.attribution.accountable


def manager_claims(a: Analysis) -> Claims:
    """The agent processes this snapshot's manager claims, each with how: in a pane of a session it records or names
    as its own, carrying one of its records' ids after its flag, or its orphan on exclusive evidence."""
    if not a.snapshot.registries.ok:
        return {}
    ours = set(a.records.agents_by_session) | {s.name for s in a.tmux.agent_sessions}
    found: Claims = {}
    showing = a.tmux.sessions_showing  # (looked up once, not once a process)
    for proc in agent_processes(a):
        if named := [name for server, name in showing(proc.pid) if name in ours]:
            found[proc.pid] = f"runs in its session {named[0]}"
    for record, carriers in a.owned.carriers.items():
        for proc in carriers:
            found.setdefault(proc.pid, f"carries its record {record}'s id")
    for c in a.attribution.claude_classes["orphan"]:
        found.setdefault(c.proc.pid, "its orphan on exclusive evidence")
    return found


SessionClaims = dict[tuple[str, str], str]  # (tmux server, session name) -> how one manager records it as its own


def session_claims(a: Analysis) -> SessionClaims:
    """The live sessions this snapshot's manager records as an agent's own (a record names it): a session two
    managers record is a conflict even with no agent process in it. A prefix alone claims none (two orchestrator
    workspaces share theirs)."""
    if not a.snapshot.registries.ok:
        return {}
    return {(s.server, name): f"its record {agents[0].id}'s session"
            for name in a.records.agents_by_session for s in a.tmux.sessions.get(name, ())
            if (agents := a.tmux.agents_in(s))}


def persons(a: Analysis, proc: processes.Proc) -> bool:
    """A person's sign on a process no manager claims: in a pane (a session no manager claims, another server's), or
    interactive (at a prompt, not a headless run)."""
    if a.attribution.leftover_of(proc) is not None:  # its terminal or its agent is gone: nobody is at its prompt
        return False
    program = proc.program
    return proc.pid in a.tmux.pane_of or proc.pid in a.snapshot.in_tmux or (
        program is not None and not program.headless(proc.argv))


def _parents(a: Analysis, proc: processes.Proc, depth: int = 4) -> str:
    chain = [f"{parent.name} ({parent.pid})" for parent in a.snapshot.ancestors(proc, depth)]
    return " < ".join(chain) or f"pid {proc.ppid} (not scanned)"


def _seen(a: Analysis, proc: processes.Proc) -> str:
    """What was seen of a process nobody accounts for, bounded: its cwd, parents, TMUX and start time."""
    started = datetime.fromtimestamp(processes.started_at(proc, a.snapshot.boot_time)).strftime("%Y-%m-%d %H:%M:%S")
    cwd, tmux = proc.cwd or "not read", proc.getenv("TMUX") or "not set"
    left = a.attribution.leftover_note(proc)  # a leftover's age and CPU time
    return f"{left}cwd {cwd:.160}; parents {_parents(a, proc)}; TMUX {tmux:.120}; started {started}"


def shared_sessions(sessions: Mapping[str, SessionClaims], a: Analysis) -> list[Finding]:
    """Each live session two managers record as their own: one failing finding naming them all (no fixer; their
    fixes hold back its kill and its records' marks)."""
    owners: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for manager, found in sessions.items():
        for key, how in found.items():
            owners.setdefault(key, []).append((manager, how))
    findings = []
    for (server, name), who in sorted(owners.items()):
        if len(who) < 2:
            continue
        reason = (f"recorded as its own by {' and '.join(f'{m} ({how})' for m, how in who)} on tmux server {server}: "
                  "a conflict for a person, never killed or marked by either")
        live = next((s for s in a.tmux.sessions.get(name, ()) if s.server == server), None)
        finding = session_finding(ACCOUNTED_FOR, a, live, reason) if live else Finding(
            ACCOUNTED_FOR, f"session {name}", reason)
        findings.append(replace(finding, manager=" & ".join(m for m, _ in who)))
    return findings


def accounted(claims: dict[str, Claims], a: Analysis, sessions: Mapping[str, SessionClaims] | None = None
              ) -> list[Finding]:
    """Each agent process against every manager's claims (manager -> Claims): two managers claiming one is a conflict
    (failing, never acted on: no fixer); one no manager claims and no person's sign accounts for is information. A
    session two managers record (``sessions``: each one's SessionClaims) is a conflict too."""
    findings = shared_sessions(sessions or {}, a)
    one = next(iter(claims.values())) if len(claims) == 1 else None  # one manager's run: one claimant or none
    for proc in agent_processes(a):
        if one is not None and proc.pid in one:
            continue  # the common case: its one manager's
        owners = [(manager, found[proc.pid]) for manager, found in claims.items() if proc.pid in found]
        if len(owners) == 1 or (not owners and persons(a, proc)):  # the common case: one manager's, or a person's
            continue
        name = proc.program.name if proc.program is not None else proc.name
        target = ProcessTarget(proc.pid, proc.start_ticks)
        if len(owners) > 1:
            who = " and ".join(f"{manager} ({how})" for manager, how in owners)
            reason = f"{name}: claimed by {who}: a conflict for a person, never acted on by either"
            findings.append(Finding(ACCOUNTED_FOR, f"pid {proc.pid}", reason, target=target,
                                    manager=" & ".join(manager for manager, _ in owners)))
        else:
            read = ", ".join(claims) or "none"
            reason = f"{name}, nobody's: no record of a manager read ({read}) and no person's sign; {_seen(a, proc)}"
            findings.append(Finding(ACCOUNTED_FOR, f"pid {proc.pid}", reason, "info", target, manager=NOBODY))
    return findings


@check(ACCOUNTED_FOR, "every agent process is accounted for (one manager's, a person's, or named as nobody's)",
       ("registry", "tmux"))
def accounted_for(a: Analysis) -> list[Finding]:
    """This run's manager's claims; a run over several managers judges all of theirs at once (observe.py)."""
    return accounted({manager_name(a.snapshot.registries.source): manager_claims(a)}, a)
