"""Read Claude Code's own background service (`claude --bg`) without trusting it: its jobs, its daemon, the
sessions files of its agents and the git worktrees they locked.

Everything is in Claude Code's config dir (``locate``, the option Agent Teams shares): `jobs/<short>/state.json`
(one record per job, its `state`), `daemon/roster.json` (the daemon's workers: pty host `pid`+`procStart`, agent
`replPid`+`replProcStart`, `attempt`), `daemon.lock` (the daemon's `pid`+`procStart`) and `sessions/<pid>.json`
(every live Claude's: `kind`, `procStart`, a bg agent's `jobId`). A pid is kept only with its start ticks: a pid
alone proves nothing. The worktrees of `-w` sessions are found in the repositories the jobs, the roster, the
sessions files and `history.jsonl` (its `project`: the only trace of a removed job's repository) name: each
`<repo>/.git/worktrees/<id>` whose `gitdir` is `<repo>/.claude/worktrees/NAME` and whose `locked` reads `claude
session NAME (pid P start T)`. Every file is read through safe_files (bounded, no symlink followed); nothing is
written. Claude Code writes its files whole and takes no flock.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ...dialect import ScopeKind
from ...records import (
    AgentRecord,
    Fingerprint,
    JobRecord,
    Owner,
    Problem,
    Records,
    RegistryError,
    Scope,
    Service,
    Worktree,
    epoch_ms,
)
from ...safe_files import digested, open_contained, read_bytes, stamp_of
from ...strict_json import parse
from ..agent_teams import reader as teams
from .dialect import CLAUDE_BACKGROUND

NAME = "claude-background"  # its line in healthchecks.sources.SOURCES
OPTIONS = teams.OPTIONS  # one --claude-config-dir for both of Claude Code's own managers
locate = teams.locate
JOBS, SESSIONS, ROSTER, LOCK, HISTORY = "jobs", "sessions", "daemon/roster.json", "daemon.lock", "history.jsonl"
SMALL = 1024 * 1024  # a state, roster, lock or sessions file is a few KB
HISTORY_LIMIT = 32 * 1024 * 1024  # a longer history is not read for repositories (said in the README)
MAX_ENTRIES = 4096  # jobs, sessions files, repositories' worktrees read per load
MAX_REPOS = 256
MAX_ERRORS = 20
LOCK_REASON = re.compile(r"claude session (\S+) \(pid (\d{1,10}) start (\d{1,20})\)")
WORKTREES = "/.claude/worktrees/"


def present(config_dir: Path) -> bool:
    """The config dir holds a daemon lock or a job."""
    return (config_dir / LOCK).exists() or bool(_job_ids(config_dir))


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """Claude Code writes its files whole and takes no flock: nothing to hold."""
    return set()


def _listing(folder: Path, root: Path) -> list[str]:
    """A folder's names, opened without following a symlink (none: it is not there, or not a folder)."""
    try:
        fd = open_contained(folder, root, folder=True)
    except (OSError, RegistryError):
        return []
    try:
        return sorted(os.listdir(fd))[:MAX_ENTRIES]
    except OSError:
        return []
    finally:
        os.close(fd)


def _job_ids(config_dir: Path) -> list[str]:
    return [n for n in _listing(config_dir / JOBS, config_dir) if CLAUDE_BACKGROUND.id_shape.fullmatch(n)]


def _watched(config_dir: Path) -> list[Path]:
    return [*(config_dir / JOBS / j / "state.json" for j in _job_ids(config_dir)), config_dir / ROSTER,
            config_dir / LOCK]


def fingerprint(config_dir: Path, before: Fingerprint = ()) -> Fingerprint:
    """Each job's state.json, the roster's and the lock's stamp (safe_files.stamp_of)."""
    hashed = digested(before)
    return tuple((str(p), _stamp(p, config_dir, str(p) in hashed)) for p in _watched(config_dir))


def _stamp(path: Path, root: Path, exact: bool) -> str | None:
    try:
        return stamp_of(path, root, exact)
    except (FileNotFoundError, RegistryError):
        return None


def _read(path: Path, root: Path) -> Any:
    """A small JSON file, parsed strictly (RegistryError: why not)."""
    return parse(path, read_bytes(path, root, SMALL))


def _ticks(value: Any) -> int | None:
    """Start ticks as Claude Code writes them (a string of digits; an integer tolerated)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 20 else None


def _pid(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31 else None


def identity(data: Mapping[str, Any], pid_key: str, ticks_key: str) -> tuple[int, int] | None:
    """(pid, start ticks) when both are there and well formed: a pid without its start proves nothing."""
    pid, ticks = _pid(data.get(pid_key)), _ticks(data.get(ticks_key))
    return (pid, ticks) if pid is not None and ticks is not None else None


def _daemon(config_dir: Path) -> Owner | None:
    """The daemon as daemon.lock names it (None: no lock, or one without pid + procStart)."""
    try:
        data = _read(config_dir / LOCK, config_dir)
    except RegistryError:
        return None
    found = identity(data, "pid", "procStart") if isinstance(data, dict) else None
    return Owner(*found) if found else None


def launch_target(config_dir: Path) -> str | None:
    """The binary daemon.lock says the daemon runs (its `launchTarget`), or None."""
    try:
        data = _read(config_dir / LOCK, config_dir)
    except RegistryError:
        return None
    target = data.get("launchTarget") if isinstance(data, dict) else None
    return target if isinstance(target, str) and target.startswith("/") and "\0" not in target else None


def _roster(config_dir: Path, errors: list[Problem]) -> tuple[dict[str, dict[str, Any]], float | None]:
    """The daemon's workers by short id, and when the roster last changed (epoch s)."""
    path = config_dir / ROSTER
    if not path.exists() and not path.is_symlink():
        return {}, None
    try:
        data = _read(path, config_dir)
    except RegistryError as exc:
        errors.extend(exc.problems)
        return {}, None
    workers = data.get("workers") if isinstance(data, dict) else None
    if not isinstance(workers, dict):
        errors.append(Problem(str(path), "$.workers", "is missing or not an object"))
        return {}, None
    changed = data.get("updatedAt")
    when = changed / 1000 if isinstance(changed, (int, float)) and not isinstance(changed, bool) else None
    return {k: w for k, w in workers.items() if isinstance(w, dict)}, when


def sessions(config_dir: Path) -> tuple[tuple[str, int, int, str, str], ...]:
    """Every readable sessions/<pid>.json as (file, pid, start ticks, kind, job id); one without its procStart, or
    whose pid is not its name's, proves nothing and is passed over (as a torn one: Claude Code rewrites them)."""
    found = []
    folder = config_dir / SESSIONS
    for name in _listing(folder, config_dir):
        stem = name.removesuffix(".json")
        if not (name.endswith(".json") and stem.isdigit()):
            continue
        try:
            data = _read(folder / name, config_dir)
        except RegistryError:
            continue
        ident = identity(data, "pid", "procStart") if isinstance(data, dict) else None
        if ident is None or ident[0] != int(stem):
            continue
        kind, job = data.get("kind"), data.get("jobId")
        found.append((str(folder / name), *ident, kind if isinstance(kind, str) else "",
                      job if isinstance(job, str) else ""))
    return tuple(found)


def _time(value: Any) -> str | None:
    """A time as Claude Code writes it (ISO with Z, or epoch ms) as ISO with its offset (the grace reads ISO)."""
    return value if isinstance(value, str) else epoch_ms(value)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _job(path: Path, short: str, data: Any, worker: dict[str, Any] | None, changed: float | None,
         bg: Iterable[tuple[str, int, int, str, str]]) -> AgentRecord | Problem:
    if not isinstance(data, dict):
        return Problem(str(path), "$", "is not an object")
    state = data.get("state")
    if not isinstance(state, str):
        return Problem(str(path), "$.state", f"is {state!r:.40}, expected a string")
    agents = [(pid, ticks) for _, pid, ticks, kind, job in bg if kind == "bg" and job == short]
    attempt = None
    if worker is not None:
        if (repl := identity(worker, "replPid", "replProcStart")) and repl not in agents:
            agents.insert(0, repl)
        attempt = worker.get("attempt") if isinstance(worker.get("attempt"), int) else 0
    name = _text(data.get("name")) or _text(data.get("intent"))
    extra = JobRecord(_text(data.get("sessionId")), name, tuple(agents), _text(data.get("cwd")), attempt,
                      changed if worker is not None else None)
    return AgentRecord(short, None, state, "", ScopeKind.STATE, (_time(data.get("updatedAt")),),
                       CLAUDE_BACKGROUND.status_class(state), extra)


def _jobs(config_dir: Path, workers: dict[str, dict[str, Any]], changed: float | None,
          bg: tuple[tuple[str, int, int, str, str], ...], errors: list[Problem]) -> tuple[list[AgentRecord], set[str]]:
    """Every job's record, and the directories its state names (its cwd: where its worktree's repository is)."""
    records, cwds = [], set()
    for short in _job_ids(config_dir):
        path = config_dir / JOBS / short / "state.json"
        try:
            data = _read(path, config_dir)
        except RegistryError as exc:
            if path.exists() or path.is_symlink():  # a job being removed (`claude rm`) is no problem
                errors.extend(exc.problems)
            continue
        made = _job(path, short, data, workers.get(short), changed, bg)
        if isinstance(made, Problem):
            errors.append(made)
            continue
        records.append(made)
        cwds.add(_text(data.get("cwd")))
    return records, cwds


def _history_projects(config_dir: Path) -> set[str]:
    """The project directories history.jsonl names (each prompt's `project`), when it is small enough."""
    try:
        raw = read_bytes(config_dir / HISTORY, config_dir, HISTORY_LIMIT)
    except (RegistryError, OSError):
        return set()
    found = set()
    for line in raw.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(project := entry.get("project"), str):
            found.add(project)
    return found


def repositories(cwds: Iterable[str]) -> list[Path]:
    """The repositories of these directories: a `-w` session's cwd is `<repo>/.claude/worktrees/NAME`."""
    repos = {c.split(WORKTREES, 1)[0] for c in cwds if c.startswith("/") and "\0" not in c}
    return [Path(r) for r in sorted(repos) if r != "/"][:MAX_REPOS]


def _small(path: Path, root: Path) -> str | None:
    try:
        return read_bytes(path, root, 4096).decode("utf-8", "replace").strip()
    except (RegistryError, OSError):
        return None


def worktrees(repo: Path) -> list[Worktree]:
    """The locked `.claude/worktrees/NAME` worktrees of one repository, as its .git/worktrees records them."""
    admin = repo / ".git" / "worktrees"
    found = []
    for entry in _listing(admin, repo):
        folder = admin / entry
        gitdir, reason = _small(folder / "gitdir", repo), _small(folder / "locked", repo)
        path = (gitdir or "").removesuffix("/.git")
        name = path.rsplit("/", 1)[-1]
        if not gitdir or path != f"{repo}{WORKTREES}{name}":
            continue  # not a Claude Code session's worktree of this repository
        lock = LOCK_REASON.fullmatch(reason) if reason else None
        if reason is not None and (lock is None or lock.group(1) != name):
            continue  # locked by someone else, for another reason: not Claude Code's
        head = _small(folder / "HEAD", repo) or ""
        branch = head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else ""
        pid, ticks = (int(lock.group(2)), int(lock.group(3))) if lock else (0, 0)  # 0: unlocked, nothing proven
        found.append(Worktree(str(repo), path, name, pid, ticks, branch))
    return found


def _worker_cwds(workers: dict[str, dict[str, Any]]) -> set[str]:
    return {c for w in workers.values() if isinstance(c := w.get("cwd"), str)}


def load(config_dir: Path, timeout: float) -> Records:
    errors: list[Problem] = []
    if not config_dir.is_dir():
        errors.append(Problem(str(config_dir), "$", "Claude config directory does not exist (point "
                              "--claude-config-dir or CLAUDE_CONFIG_DIR at it)"))
    workers, changed = _roster(config_dir, errors)
    bg = sessions(config_dir)
    records, cwds = _jobs(config_dir, workers, changed, bg, errors)
    cwds |= _worker_cwds(workers) | _history_projects(config_dir)
    cwds |= {c for f, *_ in bg if (c := _session_cwd(Path(f), config_dir))}
    trees = tuple(t for repo in repositories(cwds) for t in worktrees(repo))
    service = Service(_daemon(config_dir), bg, trees)
    stamps = fingerprint(config_dir)
    digest = hashlib.sha256(repr(stamps).encode()).hexdigest()
    index = Scope(config_dir / JOBS, ScopeKind.STATE, digest, errors=tuple(errors[:MAX_ERRORS]),
                  agents=tuple(records), name=f"{config_dir}/{JOBS}", service=service)
    return Records(config_dir, index, (), CLAUDE_BACKGROUND, NAME, fingerprint=stamps)


def _session_cwd(path: Path, config_dir: Path) -> str | None:
    try:
        data = _read(path, config_dir)
    except RegistryError:
        return None
    return cwd if isinstance(data, dict) and isinstance(cwd := data.get("cwd"), str) else None


def managed(values: Mapping[str, str]) -> dict[int, tuple[int, str]]:
    """Every process Claude Code's own files prove part of its background service, read once per snapshot in any
    source's run: pid -> (start ticks, what proves it). A bg agent by its sessions/<pid>.json (`kind` bg and its
    procStart) or the roster's replPid + replProcStart; its pty host by the roster's pid + procStart; the daemon by
    daemon.lock. The caller compares the ticks with the process's own: a reused pid is never the service's."""
    config_dir = locate(values)
    proven: dict[int, tuple[int, str]] = {}
    for file, pid, ticks, kind, job in sessions(config_dir):
        if kind == "bg":
            proven[pid] = (ticks, f"a background agent of Claude Code (job {job or '?'}; {os.path.basename(file)})")
    workers, _ = _roster(config_dir, [])
    for short, worker in workers.items():
        if repl := identity(worker, "replPid", "replProcStart"):
            proven[repl[0]] = (repl[1], f"a background agent of Claude Code (job {short:.16}, its daemon's roster)")
        if host := identity(worker, "pid", "procStart"):
            proven[host[0]] = (host[1], f"the pty host of Claude Code's background job {short:.16}")
    if daemon := _daemon(config_dir):
        proven[daemon.pid] = (daemon.start_ticks or 0, "Claude Code's background daemon (daemon.lock)")
    return proven
