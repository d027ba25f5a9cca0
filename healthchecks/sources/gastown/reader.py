"""Read a Gas Town town (steveyegge/gastown, read at a8bd79bf) without trusting it, and never write it.

Its agents' records are the live sessions of the town's own tmux server (`tmux -L <socket>`: --gt-socket, else
$GT_TMUX_SOCKET, else `<sanitised basename>-<6 hex of sha256(realpath(town))>`, session/registry.go:121-193), read
once with `list-panes -a` (handed to the snapshot as that server's live state: Records.servers). A session is the
town's when its name starts with `hq-` or a rig's beads prefix + `-` (mayor/rigs.json) and it was launched with the
pair GT_ROOT = this town, GT_SESSION = itself (`new-session -e` sets them in the session and in its pane's process):
read in /proc/<pid>/environ of its first live pane, else in tmux's session environment (`show-environment -t =<s>`
chained with `;` under tmux's 16 KiB message, each block opened by a marker carrying a random token). Its pid files
(`<town>/.runtime/pids/<session>.pid`: `<pid>|<ps lstart>` or an older release's bare `<pid>`) are the processes it
tracked (Scope.tracked, judged by checks.stale_pid_files). The beads ledger is read only through `bd`, bounded
(healthchecks/sources/gastown/ledger.py); without it, Scope.unread says so. Every problem names the file or
server, where, and what is wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from ... import processes, tmux
from ...dialect import Dialect, ScopeKind
from ...records import AgentRecord, Fingerprint, Problem, Records, RegistryError, Scope, ServerRecord, Tracked
from ...safe_files import digested, open_contained, read_bytes, read_stamped, stamp_of
from ...safe_files import present as standing
from ...strict_json import parse
from .dialect import GAS_TOWN
from .ledger import Ledger
from .ledger import read as read_ledger

NAME = "gastown"  # its line in healthchecks.sources.SOURCES
RIGS = ("mayor/rigs.json", "rigs.json")  # the canonical one, then its copy at the town root (registry.go:204-228)
PIDS = ".runtime/pids"
PID_BYTES = 256  # `<pid>|<Thu Apr 30 09:02:38 2026>\n`
MAX_PID_FILES = 10_000
# A tmux client sends its whole command list in one message, at most 16 KiB (MAX_IMSGSIZE): a call's arguments stay
# below this many bytes (about 100 sessions' environments a call; 1,000 sessions: 10 calls)
CALL_BYTES = 12_000
LSTART = "%a %b %d %H:%M:%S %Y"  # `ps -o lstart=` under LC_ALL=C (pidtrack.go:179-191): local time
PREFIX = re.compile(r"[A-Za-z0-9_]{1,40}")  # a beads prefix as session names carry it
RIG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # a rig's folder in the town
SOCKET_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
OPTIONS = (
    ("--gt-town", "Gas Town's town directory (default $GT_TOWN_ROOT, else ~/gt)", ""),
    ("--gt-socket", "the town's tmux socket name (default $GT_TMUX_SOCKET, else derived from the town as Gas Town "
                    "derives it: <basename>-<6 hex of sha256(realpath)>)", ""),
)
_SANITISE = re.compile(r"[^a-z0-9-]+")
SERVER = "tmux:"  # the fingerprint's entry for the town server's panes: this, then its socket's path
LAUNCH = frozenset({"GT_ROOT", "GT_SESSION", "GT_ROLE", "GT_RIG", "GT_AGENT"})  # read of a pane's process environment


def locate(values: Mapping[str, str]) -> Path:
    """The town: the run's workspace. A --gt-socket must be a socket name, never a path (load_given reads it)."""
    if (socket := values.get("--gt-socket")) and not SOCKET_NAME.fullmatch(socket):
        raise ValueError(f"--gt-socket {socket!r:.80} is not a tmux socket name")
    return Path(values.get("--gt-town") or os.environ.get("GT_TOWN_ROOT") or "~/gt").expanduser().absolute()


def town_socket(town: Path, given: str | None = None) -> str:
    """The town's tmux socket name: as given (--gt-socket), else as Gas Town derives it (InitRegistry,
    townSocketName)."""
    if given:
        return given
    if (env := os.environ.get("GT_TMUX_SOCKET", "")) not in ("", "default", "auto"):
        return env
    base = _SANITISE.sub("-", town.name.lower()).strip("-") or "default"
    return f"{base}-{hashlib.sha256(os.path.realpath(town).encode()).hexdigest()[:6]}"


def present(town: Path) -> bool:
    return standing(town / "mayor" / "town.json")


def flocked(workspace: Path, records: Records | None) -> set[Path]:
    """Gas Town writes its pid files and rigs.json with plain writes, no flock: nothing to hold."""
    return set()


def _rigs_file(town: Path) -> Path:
    return next((town / r for r in RIGS if standing(town / r)), town / RIGS[0])


def _prefixes(town: Path, path: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Each rig's beads prefix (rigs.json `rigs.<name>.beads.prefix`) and the rigs' names; RegistryError when the
    file is unreadable or not of that shape (a missing one: no rigs, as Gas Town reads it)."""
    if not standing(path):
        return (), ()
    raw, _, _ = read_stamped(path, town)
    data = parse(path, raw)
    rigs = data.get("rigs", {}) if isinstance(data, dict) else None
    if not isinstance(rigs, dict):
        raise RegistryError(Problem(str(path), "$.rigs", "expected an object"))
    found = []
    for name, rig in rigs.items():
        prefix = (rig.get("beads") or {}).get("prefix") if isinstance(rig, dict) else None
        if prefix in (None, ""):
            continue
        if not isinstance(prefix, str) or not PREFIX.fullmatch(prefix):
            raise RegistryError(Problem(str(path), f"$.rigs.{name}.beads.prefix", f"{prefix!r:.40} is no prefix"))
        found.append(prefix)
    names = sorted(n for n in rigs if RIG_NAME.fullmatch(n))  # a folder of the town, never a path
    return tuple(sorted(set(found))), tuple(names)


class Live(NamedTuple):
    """A session of the town's server as its live read lists it: its first live pane's process (0: none)."""

    name: str
    created: float
    pid: int


def _server(socket: str, timeout: float) -> tmux.TmuxServer:
    """The town's server read live, once (one `list-panes -a`): its sessions are the records' and the snapshot's
    live state of that server (Records.servers); a problem when it cannot be read."""
    server = tmux.read_server(socket, timeout, label=tmux.default_socket_path(socket))
    if not server.reachable:
        raise RegistryError(Problem(f"tmux server {socket}", "list-panes", server.reason[:200]))
    return server


def _sessions(server: tmux.TmuxServer) -> list[Live]:
    """Every session of the server, with the process of its first live pane (a window linked into several sessions
    is listed under each)."""
    found: dict[str, Live] = {}
    for pane in server.panes:
        live = not pane.dead and pane.pid > 0
        if pane.session not in found or (live and not found[pane.session].pid):
            found[pane.session] = Live(pane.session, pane.session_created, pane.pid if live else 0)
    return list(found.values())


def _environments(socket: str, names: list[str], timeout: float) -> dict[str, dict[str, str]]:
    """Each session's environment, from one tmux client per CALL_BYTES of arguments. tmux skips the rest of a
    chain after a failing command (a session gone meanwhile): the rest is read again without it."""
    found: dict[str, dict[str, str]] = {}
    pending = list(names)
    while pending:
        token, size = secrets.token_hex(8), 0
        args: list[str] = []
        chunk: list[str] = []
        for i, name in enumerate(pending):
            size += 2 * len(name.encode()) + 80  # two commands' words and their NULs
            if i and size > CALL_BYTES:
                break
            chunk.append(name)
            args += ["display-message", "-p", "-t", f"={name}", f"{token} {i}", ";",
                     "show-environment", "-t", f"={name}", ";"]
        done = tmux.run(socket, *args[:-1], timeout=timeout)
        current: dict[str, str] | None = None
        read = 0
        for line in done.stdout.splitlines():
            if line.startswith(token + " "):
                read = int(line.split()[1]) + 1
                current = found.setdefault(chunk[read - 1], {})
            elif current is not None and "=" in line and not line.startswith("-"):
                key, _, value = line.partition("=")
                current[key] = value
        if done.returncode != 0 and not any(m in done.stderr for m in ("no such session", "can't find session")):
            raise RegistryError(Problem(f"tmux server {socket}", "show-environment", done.stderr.strip()[:200]))
        pending = pending[len(chunk):] if done.returncode == 0 else pending[max(read, 1):]
    return found


def _iso(created: float) -> str | None:
    return datetime.fromtimestamp(created, timezone.utc).isoformat() if created > 0 else None


def _launched(town: Callable[[str], bool], name: str, env: Mapping[str, str]) -> bool:
    """The pair Gas Town's launch sets (`new-session -e`): GT_ROOT this town, GT_SESSION this very session."""
    return env.get("GT_SESSION") == name and town(env.get("GT_ROOT") or "")


def _records(town: Path, socket: str, prefixes: tuple[str, ...], live: list[Live],
             timeout: float) -> tuple[AgentRecord, ...]:
    """A record per session of the town: named like its sessions, launched by it (crew: a person's). The pair is
    read in its pane's process environment, which the launch set (`new-session -e` puts it in the process too);
    tmux's session environment only for a session whose pane's cannot be read or does not show it (a dead pane)."""
    if not live:
        return ()
    starts = ("hq-", *(p + "-" for p in prefixes))
    root, server = os.path.realpath(town), tmux.default_socket_path(socket)
    ours = functools.cache(lambda path: bool(path) and os.path.realpath(path) == root)  # a few paths, each once
    envs = {s.name: dict(processes.environ_read(s.pid, LAUNCH) or ()) if s.pid else {}
            for s in live if s.name.startswith(starts)}
    if missing := [name for name, env in envs.items() if not _launched(ours, name, env)]:
        envs |= _environments(socket, missing, timeout)
    records, where = [], ServerRecord(server)  # one for every record: frozen, and the same server
    for s in live:
        if s.name not in envs or not _launched(ours, s.name, env := envs[s.name]):
            continue  # not launched by this town (or gone meanwhile): an untracked session, information
        status = ("/crew/" in env.get("GT_ROLE", "") and GAS_TOWN.crew_status) or "live"
        program = (env["GT_AGENT"],) if env.get("GT_AGENT") else ()  # the agent preset it launched: `codex`, ...
        records.append(AgentRecord(s.name, env.get("GT_RIG") or None, status, s.name, ScopeKind.STATE,
                                   (_iso(s.created),), GAS_TOWN.status_class(status), where, program))
    return tuple(records)


def _beads(ledger: Ledger, live: set[str], server: str) -> tuple[AgentRecord, ...]:
    """The ledger's agents whose session is not live (a live one is already a record): ghosts when active."""
    where = ServerRecord(server)  # one for every record: it is frozen, and the same server's
    return tuple(AgentRecord(b.session, None, b.state, b.session, ScopeKind.STATE, (), GAS_TOWN.status_class(b.state),
                             where) for b in ledger.beads or () if b.session not in live)


def _started(text: str) -> float | None:
    try:
        return time.mktime(time.strptime(text.strip(), LSTART))
    except (ValueError, OverflowError):
        return None


def _tracked(path: Path, raw: bytes | None) -> Tracked:
    """A pid file as read; pid 0 when it holds none Gas Town writes (a torn plain write, a hand edit): reported by
    the check, never blocking the others."""
    text = raw.decode("utf-8", "replace").strip() if raw is not None else ""
    pid, bar, lstart = text.partition("|")
    started = _started(lstart) if bar else None
    valid = pid.isdigit() and 0 < int(pid) < 2**22 and not (bar and started is None)
    return Tracked(str(path), int(pid) if valid else 0, started, path.name[: -len(".pid")])


def _pid_files(town: Path) -> tuple[Tracked, ...]:
    """Every `<session>.pid` of the town, each read bounded through no symlink."""
    folder = town / PIDS
    try:
        fd = open_contained(folder, town, folder=True)
    except RegistryError:
        return ()  # no pid files (a town whose agents never tracked one)
    try:
        names = sorted(n for n in os.listdir(fd) if n.endswith(".pid"))[:MAX_PID_FILES]
    finally:
        os.close(fd)
    return tuple(_tracked(folder / name, _read_pid(folder / name, town)) for name in names)


def _read_pid(path: Path, town: Path) -> bytes | None:
    try:
        return read_bytes(path, town, PID_BYTES)
    except RegistryError:
        return None


def fingerprint(town: Path, before: Fingerprint = (), read: tmux.TmuxServer | None = None) -> Fingerprint:
    """rigs.json's and every pid file's stamp, and the town server's panes (``read``, as load read them; after it,
    read again on the server ``before`` names): that server is read with the records, before the processes are
    scanned, so a session launched or ended in between (its pid file only comes seconds later) is a change."""
    hashed = digested(before)
    files = [_rigs_file(town), *sorted((town / PIDS).glob("*.pid"))] if standing(town) else []
    stamps = tuple((str(p), _stamp(p, town, str(p) in hashed)) for p in files)
    if read is not None:
        return (*stamps, (SERVER + read.socket_path, _panes_stamp((p.pane_id, p.pid, p.dead) for p in read.panes)))
    socket = next((path[len(SERVER):] for path, _ in before if path.startswith(SERVER)), None)
    return stamps if socket is None else (*stamps, (SERVER + socket, _panes_now(socket)))


def _panes_stamp(panes: Iterable[tuple[str, int, bool]]) -> str:
    listed = "\n".join(sorted({f"{pane} {pid} {int(dead)}" for pane, pid, dead in panes}))
    return "sha256:" + hashlib.sha256(listed.encode()).hexdigest()


def _panes_now(socket: str) -> str:
    """The server's panes now (one `list-panes -a` of three fields), as _panes_stamp names them; a server that no
    longer answers is a change too."""
    try:
        done = tmux.run(socket, "list-panes", "-a", "-F", "#{pane_id}\t#{pane_pid}\t#{pane_dead}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unread: {exc}"
    if done.returncode != 0:
        return "sha256:" + hashlib.sha256(b"").hexdigest() if done.stderr.strip() in tmux.EMPTY_SERVER_MARKERS \
            else f"unread: {done.stderr.strip()[:80]}"
    rows = (line.split("\t") for line in done.stdout.splitlines())
    return _panes_stamp((r[0], int(r[1]), r[2] == "1") for r in rows if len(r) == 3 and r[1].isdigit())


def _stamp(path: Path, town: Path, exact: bool) -> str | None:
    try:
        return stamp_of(path, town, exact)
    except (FileNotFoundError, RegistryError):
        return None


def _broken(town: Path, problem: Problem, dialect: Dialect = GAS_TOWN) -> Records:
    return Records(town, Scope(town / RIGS[0], ScopeKind.STATE, errors=(problem,), name=str(town)), (), dialect,
                   NAME, fingerprint=fingerprint(town))


def load_given(town: Path, timeout: float, given: Mapping[str, str]) -> Records:
    """The town as this run's options name its server (its Place.load)."""
    return load(town, timeout, given.get("--gt-socket"))


def load(town: Path, timeout: float = 5.0, socket: str | None = None) -> Records:
    """The town's records, read on the tmux server ``socket`` names (None: as Gas Town derives it)."""
    socket = town_socket(town, socket)
    if not town.is_dir():
        return _broken(town, Problem(str(town), "$", "town directory does not exist (point --gt-town at it)"))
    rigs = _rigs_file(town)
    try:
        prefixes, names = _prefixes(town, rigs)
    except RegistryError as exc:
        return _broken(town, exc.problem)
    dialect = dataclasses.replace(GAS_TOWN, session_prefix=("hq-", *(p + "-" for p in prefixes)))
    try:
        read = _server(socket, timeout)
        agents = _records(town, socket, prefixes, _sessions(read), timeout)
    except (RegistryError, OSError, subprocess.TimeoutExpired) as exc:
        problem = exc.problem if isinstance(exc, RegistryError) else Problem(f"tmux server {socket}", "", str(exc))
        return _broken(town, problem, dialect)
    server = tmux.default_socket_path(socket)
    beads = read_ledger(town, names, prefixes, timeout)
    agents += _beads(beads, {a.id for a in agents}, server)
    unread = (("the beads ledger", beads.unread),) if beads.unread else ()
    state = Scope(rigs, ScopeKind.STATE, agents=agents, name=f"town {town}", tracked=_pid_files(town), unread=unread)
    return Records(town, state, (), dialect, NAME, fingerprint=fingerprint(town, read=read), servers=(read,))

