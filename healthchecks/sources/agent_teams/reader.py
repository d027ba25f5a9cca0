"""Read Claude Code Agent Teams (`<config dir>/teams/<team>/config.json`) without trusting it.

One scope per team, owned by its lead (`leadProcess` pid + procStart), holding the members that run in tmux
panes (`backendType` tmux): each a record placed by its pane id on the server the team's panes live on (its
``server``, read by healthchecks.snapshot.read_servers like any record's). That server is not in config.json: it
is the lead's own (the `TMUX` of a live lead's environment; a lead whose session file says it ran in tmux, the
default server) or else the private `claude-swarm-<lead pid>` server. Only a server whose socket exists is named
(a dead lead's swarm server is normally gone, and a missing server is not a fault). The config dir is the run's
workspace (``locate``); Claude Code writes config.json whole and renames it into place, with no flock. There is
no schema version: missing keys are tolerated (older releases lack `leadProcess`); what is there must have its
type, else one line: file, JSON path, what is wrong.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...dialect import ScopeKind
from ...processes import start_ticks
from ...records import (
    AgentRecord,
    Fingerprint,
    Owner,
    PaneRecord,
    Problem,
    Records,
    RegistryError,
    Scope,
    epoch_ms,
)
from ...safe_files import digested, read_bytes, read_stamped, stamp_of
from ...safe_files import present as standing
from ...strict_json import parse
from ...tmux import default_socket_path
from .dialect import AGENT_TEAMS

NAME = "agent-teams"  # its line in healthchecks.sources.SOURCES
TEAMS = "teams"
MAX_ERRORS_PER_FILE = 20
MAX_ENVIRON = 1024 * 1024
# Its store's own options: (flag, help, default); `locate` turns their values into the store's directory.
OPTIONS = (("--claude-config-dir", "Claude Code's config directory: Agent Teams' teams/<team>/config.json, its "
                                   "background agents' jobs/, daemon/roster.json and daemon.lock, and "
                                   "sessions/<pid>.json (default $CLAUDE_CONFIG_DIR, else ~/.claude)", ""),)


def locate(values: Mapping[str, str]) -> Path:
    """Claude Code's config dir: the run's workspace when Agent Teams is judged."""
    chosen = values.get("--claude-config-dir") or os.environ.get("CLAUDE_CONFIG_DIR") or "~/.claude"
    return Path(chosen).expanduser().absolute()


def present(config_dir: Path) -> bool:
    """The config dir holds at least one team."""
    try:
        return any((d / "config.json").exists() for d in (config_dir / TEAMS).iterdir())
    except OSError:
        return False


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """Claude Code writes config.json whole and renames it into place, taking no flock: nothing to hold (a read
    that changed under it is taken again by the snapshot)."""
    return set()


def _team_files(config_dir: Path) -> list[Path]:
    try:
        return sorted(d / "config.json" for d in (config_dir / TEAMS).iterdir() if not d.name.startswith("."))
    except OSError:
        return []


def fingerprint(config_dir: Path, before: Fingerprint = ()) -> Fingerprint:
    """Each config.json's stamp (safe_files.stamp: an lstat for one still a while, its digest for a fresh one or
    one digested ``before``)."""
    hashed = digested(before)
    return tuple((str(path), _stamp(path, config_dir, str(path) in hashed)) for path in _team_files(config_dir))


def _stamp(path: Path, config_dir: Path, exact: bool) -> str | None:
    try:
        return stamp_of(path, config_dir, exact)
    except FileNotFoundError:
        return None


def _type_error(path: Path, where: str, value: Any, wanted: str) -> Problem:
    return Problem(str(path), where, f"is {type(value).__name__}, expected {wanted}")


def _owner(path: Path, data: dict[str, Any], errors: list[Problem]) -> Owner | None:
    lead = data.get("leadProcess")
    if lead is None:
        return None
    if not isinstance(lead, dict):
        errors.append(_type_error(path, "$.leadProcess", lead, "an object"))
        return None
    pid, ticks = lead.get("pid"), lead.get("procStart")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        errors.append(Problem(str(path), "$.leadProcess.pid", f"is {pid!r:.40}, expected a positive integer"))
        return None
    if ticks is not None and not (isinstance(ticks, (str, int)) and str(ticks).isdigit()):
        errors.append(Problem(str(path), "$.leadProcess.procStart", f"is {ticks!r:.40}, expected clock ticks (digits)"))
        return None
    space = lead.get("pidSpace")
    here = not isinstance(space, str) or (found := PID_SPACE.search(space)) is None or found.group(0) == _my_space()
    return Owner(pid, int(ticks) if ticks is not None else None, here)


PID_SPACE = re.compile(r"pid:\[\d+\]")


def _my_space() -> str | None:
    """This process's pid namespace as the kernel names it (`pid:[4026531836]`)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _lead_tmux(config_dir: Path, owner: Owner) -> str | None:
    """The socket of the server a lead runs in: its live environment's TMUX, else (a dead lead whose session
    file says it ran in tmux) the default server's; None when it ran outside tmux (or nothing says)."""
    try:
        raw = read_bounded_environ(owner.pid)
        if owner.start_ticks is not None and start_ticks(owner.pid) == owner.start_ticks:
            for var in raw.split(b"\0"):
                if var.startswith(b"TMUX="):
                    return os.fsdecode(var[5:]).split(",", 1)[0] or None
            return None
    except OSError:
        pass
    try:
        session = parse(config_dir / "sessions" / f"{owner.pid}.json",
                        read_bytes(config_dir / "sessions" / f"{owner.pid}.json", config_dir))
    except RegistryError:
        return None
    return default_socket_path(None) if isinstance(session, dict) and session.get("tmux") else None


def read_bounded_environ(pid: int) -> bytes:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return fh.read(MAX_ENVIRON)


def _server(config_dir: Path, owner: Owner | None) -> str | None:
    """The socket of the server a team's panes live on: the lead's own, else its swarm server; None when neither
    exists (or the lead's pid is another namespace's)."""
    if owner is None or not owner.here:
        return None
    found = (_lead_tmux(config_dir, owner), default_socket_path(f"claude-swarm-{owner.pid}"))
    return next((os.path.realpath(s) for s in found if s and os.path.exists(s)), None)



def _members(path: Path, team: str, data: dict[str, Any], owner: Owner | None, server: str | None,
             errors: list[Problem]) -> list[AgentRecord]:
    members = data.get("members", [])
    if not isinstance(members, list):
        errors.append(_type_error(path, "$.members", members, "an array"))
        return []
    records = []
    for i, m in enumerate(members):
        where = f"$.members[{i}]"
        if not isinstance(m, dict):
            errors.append(_type_error(path, where, m, "an object"))
            continue
        if m.get("backendType") != "tmux":
            continue  # the lead, in-process members: they live inside the lead's process
        aid, pane, active = m.get("agentId"), m.get("tmuxPaneId"), m.get("isActive", True)
        if not isinstance(aid, str) or not AGENT_TEAMS.id_shape.fullmatch(aid):
            errors.append(Problem(str(path), f"{where}.agentId", f"is {aid!r:.60}, expected <name>@<team>"))
        elif not isinstance(pane, str) or not (pane.startswith("%") and pane[1:].isdigit()):
            errors.append(Problem(str(path), f"{where}.tmuxPaneId", f"is {pane!r:.40}, expected a tmux pane id %N"))
        elif not isinstance(active, bool):
            errors.append(_type_error(path, f"{where}.isActive", active, "a boolean"))
        else:
            status = "active" if active else "inactive"
            records.append(AgentRecord(aid, team, status, "", ScopeKind.TEAM, (epoch_ms(m.get("joinedAt")),),
                                       AGENT_TEAMS.status_class(status), PaneRecord(server, pane, owner)))
    return records


def _team(config_dir: Path, path: Path) -> Scope:
    team = path.parent.name
    tasks = config_dir / "tasks" / team
    try:
        raw, stamp, mtime = read_stamped(path, config_dir)
    except RegistryError as exc:
        return Scope(path, ScopeKind.TEAM, errors=exc.problems, name=team)
    try:
        data = parse(path, raw)
    except RegistryError as exc:
        return Scope(path, ScopeKind.TEAM, errors=exc.problems, name=team, stamp=stamp)
    if not isinstance(data, dict):
        return Scope(path, ScopeKind.TEAM, errors=(_type_error(path, "$", data, "an object"),), name=team,
                     stamp=stamp)
    errors: list[Problem] = []
    owner = _owner(path, data, errors)
    members = _members(path, team, data, owner, _server(config_dir, owner), errors)
    digest = hashlib.sha256(raw).hexdigest()
    return Scope(path, ScopeKind.TEAM, digest, mtime, tuple(errors[:MAX_ERRORS_PER_FILE]),
                 agents=tuple(members), keys=frozenset(data), owner=owner, name=team,
                 belongings=(tasks,) if standing(tasks) else (), stamp=stamp)


def load(config_dir: Path, timeout: float) -> Records:
    index = Scope(config_dir / TEAMS, ScopeKind.TEAM, name=f"{config_dir}/{TEAMS}")
    if not config_dir.is_dir():
        index = Scope(config_dir / TEAMS, ScopeKind.TEAM, name=f"{config_dir}/{TEAMS}", errors=(
            Problem(str(config_dir), "$", "Claude config directory does not exist (point --claude-config-dir or "
                    "CLAUDE_CONFIG_DIR at it)"),))
    teams = tuple(_team(config_dir, path) for path in _team_files(config_dir))
    stamps = tuple((str(team.path), team.stamp) for team in teams)
    return Records(config_dir, index, teams, AGENT_TEAMS, NAME, fingerprint=stamps)
