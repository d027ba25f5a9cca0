"""The invariants: pure functions from an Analysis to findings.

Each check declares what it needs ("registry", "tmux"); when a need is unmet the check is not
judged at all (skipped for a broken registry, errored for unreachable tmux), because judging on
missing facts is how "tmux is down" turns into "every agent is a ghost".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from .analysis import Analysis, LiveSession
from .registry import GLOBAL_RELPATH, RegistryFile, expected_counters

Severity = Literal["fail", "info"]


@dataclass(frozen=True)
class Finding:
    """One thing wrong (or worth knowing) about one entity.

    ``target`` identifies the entity precisely enough for a fixer to re-verify it:
    ("process", pid, start_ticks), ("session", server, name, created), ("agent", id),
    ("counter", file, name) or ("file", path).
    """

    check: str
    entity: str
    reason: str
    severity: Severity = "fail"
    target: tuple = ()

    def line(self) -> str:
        return f"{self.entity}: {self.reason}"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    needs: frozenset[str]
    judge: Callable[[Analysis], list[Finding]]


CHECKS: dict[str, Check] = {}


def check(id: str, title: str, needs: tuple[str, ...] = ()) -> Callable:
    def register(fn: Callable[[Analysis], list[Finding]]) -> Callable[[Analysis], list[Finding]]:
        CHECKS[id] = Check(id, title, frozenset(needs), fn)
        return fn

    return register


def unmet(check: Check, analysis: Analysis) -> tuple[str, str] | None:
    """("skip"|"error", reason) when a check cannot be judged on this snapshot."""
    snap = analysis.snapshot
    if "registry" in check.needs and not snap.registries.ok:
        first = snap.registries.all_errors[0]
        return "skip", f"registry unusable: {first}"
    if "tmux" in check.needs and not snap.tmux_ok:
        return "error", "tmux unreachable, cannot judge: " + "; ".join(snap.tmux_errors)
    return None


def judge(analysis: Analysis) -> dict[str, list[Finding] | tuple[str, str]]:
    """Every check's findings, or its (skip|error, reason) when it cannot be judged."""
    return {c.id: unmet(c, analysis) or c.judge(analysis) for c in CHECKS.values()}


def _file_label(file: RegistryFile) -> str:
    return str(GLOBAL_RELPATH) if file.kind == "global" else f"{file.path.parent.name}/{file.path.name}"


def _agent_finding(check_id: str, agent_id: str, reason: str) -> Finding:
    return Finding(check_id, f"agent {agent_id}", reason, target=("agent", agent_id))


def _session_finding(check_id: str, session: LiveSession, reason: str) -> Finding:
    """A failing finding on one live session, identified as a fixer must re-verify it: server, name, created."""
    target = ("session", session.server, session.name, session.created)
    return Finding(check_id, f"session {session.name}", reason, target=target)


@check("registry_schema", "registry files parse and match their JSON Schemas")
def registry_schema(a: Analysis) -> list[Finding]:
    """Every registry file is strict UTF-8 JSON that matches the shipped schema."""
    regs = a.snapshot.registries
    lines = regs.errors + tuple(e for f in regs.files for e in f.errors)
    return [Finding("registry_schema", *line.split(": ", 1), target=("file",)) for line in lines]


def _count_findings(file: RegistryFile, expected: dict[str, int]) -> list[Finding]:
    label = _file_label(file)
    return [
        Finding(
            "counters",
            f"{label} {name}",
            f"says {file.counters[name]}, entries say {value}",
            target=("counter", str(file.path), name, value),
        )
        for name, value in expected.items()
        if name in file.counters and file.counters[name] != value
    ]


@check("counters", "registry counters match the entries", ("registry",))
def counters(a: Analysis) -> list[Finding]:
    """Counters the orchestrator forgets to decrement drift from what the entries say."""
    return [
        f
        for file in a.snapshot.registries.files
        for f in _count_findings(file, expected_counters(file.kind, file.agents, file.task_ids))
    ]


@check("registry_agreement", "task registries agree with the global registry", ("registry",))
def registry_agreement(a: Analysis) -> list[Finding]:
    """Every task-registry agent is in the global registry, under the same task, in the same class."""
    findings = []
    global_ids = {r.id: r for r in a.snapshot.registries.global_file.agents}
    for file in a.snapshot.registries.task_files:
        for rec in file.agents:
            glob = global_ids.get(rec.id)
            if glob is None:
                reason = f"listed in {_file_label(file)} but missing from the global registry"
            elif glob.task_id != rec.task_id:
                reason = f"task {rec.task_id} in {_file_label(file)}, task {glob.task_id} in the global registry"
            elif glob.status_class != rec.status_class:
                reason = (
                    f"{rec.status_class} ({rec.status}) in {_file_label(file)}, "
                    f"{glob.status_class} ({glob.status}) in the global registry"
                )
            else:
                continue
            findings.append(_agent_finding("registry_agreement", rec.id, reason))
    return findings


@check("known_statuses", "every agent status is a known one", ("registry",))
def known_statuses(a: Analysis) -> list[Finding]:
    """An unknown status is neither active nor terminal, so no other check can judge that agent."""
    return [
        _agent_finding("known_statuses", agent.id, f"unknown status {rec.status!r} ({rec.source} registry)")
        for agent in a.agents.values()
        for rec in agent.records
        if rec.status_class == "unknown"
    ]


@check("ghost_agents", "no ghost agents (active in the registry, session gone)", ("registry", "tmux"))
def ghost_agents(a: Analysis) -> list[Finding]:
    """An active entry past grace whose tmux session is live on no checked server."""
    return [
        _agent_finding("ghost_agents", agent.id, f"registry says active, session {agent.session} is not live")
        for agent in a.agents.values()
        if agent.active and agent.session not in a.sessions and a.past_grace(agent.started_at)
    ]


@check("zombie_sessions", "no zombie sessions (agent session without Claude)", ("registry", "tmux"))
def zombie_sessions(a: Analysis) -> list[Finding]:
    """A live session of an active agent, past grace, whose panes run no Claude process."""
    findings = []
    for session in a.agent_sessions:
        agents = a.agents_by_session.get(session.name, [])
        if (session.server, session.name) in a.own_sessions:
            continue  # said once, by leaked_sessions
        if not any(agent.active for agent in agents) or not a.past_grace(session.created):
            continue
        if (session.server, session.name) not in a.sessions_with_claude:
            reason = f"no Claude process in its panes (tmux server {session.server})"
            findings.append(_session_finding("zombie_sessions", session, reason))
    return findings


@check("leaked_sessions", "no leaked sessions (agent finished, session still live)", ("registry", "tmux"))
def leaked_sessions(a: Analysis) -> list[Finding]:
    """A terminal entry whose session still runs; an untracked prefixed session is only information."""
    findings = []
    for session in a.agent_sessions:
        agents = a.agents_by_session.get(session.name)
        has_claude = (session.server, session.name) in a.sessions_with_claude
        if (session.server, session.name) in a.own_sessions:
            reason = "this health check runs inside it, so it is neither judged nor ever killed"
            findings.append(Finding("leaked_sessions", f"session {session.name}", reason, severity="info"))
        elif not agents:
            inside = "Claude runs inside" if has_claude else "no Claude inside"
            findings.append(
                Finding(
                    "leaked_sessions",
                    f"session {session.name}",
                    f"untracked: no registry entry (may belong to another workspace; {inside}); left alone",
                    severity="info",
                )
            )
        elif all(agent.terminal for agent in agents) and all(a.past_grace(agent.ended_at) for agent in agents):
            statuses = ", ".join(f"{agent.id} {agent.records[0].status}" for agent in agents)
            reason = f"registry says finished ({statuses}), session still live on tmux server {session.server}"
            findings.append(_session_finding("leaked_sessions", session, reason))
    return findings


@check("orphan_processes", "no orphan Claude processes", ("registry", "tmux"))
def orphan_processes(a: Analysis) -> list[Finding]:
    """A Claude process outside every live pane that provably belongs to this workspace."""
    classes = a.claude_classes
    orphans = [
        Finding(
            "orphan_processes",
            f"pid {p.pid}",
            f"{p.name}: outside every live tmux pane; {reason}",
            target=("process", p.pid, p.start_ticks),
        )
        for p, reason in classes["orphan"]
    ]
    foreign = [
        Finding(
            "orphan_processes", f"pid {p.pid}", f"{p.name}: outside every live tmux pane, {reason}", severity="info"
        )
        for p, reason in classes["foreign"]
    ]
    return orphans + foreign
