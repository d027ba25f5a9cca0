"""Collect one read-only snapshot of registries, tmux servers and processes.

Reading the registry, tmux and processes is not atomic: an agent deployed in between would look
like a ghost. So the registry files are fingerprinted again after the live reads and the whole
snapshot is taken again (a bounded number of times) when they changed, holding the files that
changed under a shared flock (holding.py) so that a writer that never pauses waits for it; `stable`
says whether it was reached. Processes are scanned before tmux is read: a process inside a pane has
a pane at least as old as itself, so every scanned process that runs in a session finds that session
in the later tmux read. The evidence of ownership (cwd, TMUX environment) is read last, and only for
agent programs' processes (and their leftovers, programs.py) outside every pane and their process groups: the only
processes judged by it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from operator import attrgetter
from pathlib import Path

import psutil

from . import holding, processes, sightings, sources, threads, tmux
from .processes import Proc
from .programs import left_by
from .records import Records, ServerRecord, extensions
from .settings import Settings
from .tmux import State, TmuxServer, Unreachable

MAX_ATTEMPTS = 4
OTHER_SERVERS_AT_ONCE = 16  # other tmux servers read at the same time (each is one short-lived tmux client)
MAX_RECORD_SERVERS = 64  # servers records name as their own (agent-deck's tmux_socket_name) read per snapshot
TMUX_SERVER_NAME = "tmux: server"  # how every tmux server names itself (its kernel process name)
_PID = attrgetter("pid")
TMUX_FILE_NAME = re.compile(r"tmux(?:[.-].*)?")  # another install's tmux, `tmux-3.4`, `tmux.real`


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    taken_at: float
    duration: float
    attempts: int
    stable: bool  # False: the registry kept changing while we read; judged on the last read
    registries: Records
    servers: tuple[TmuxServer, ...]  # the checked servers, each once
    processes: tuple[Proc, ...]  # (named Proc here: this field hides the module inside the class)
    self_pids: frozenset[int]  # the collecting process and its ancestors
    # What collect works out of these processes and servers anyway, kept: judging asks the same (3 ms at 1,000
    # sessions). pid -> its children's pids (processes.children_of); pid -> (server, window id) of the live pane it
    # runs in (pane_of).
    children: dict[int, list[int]]
    windows: dict[int, tuple[str, str]]
    tmux_version: str = ""
    # Every other tmux server of this user found running (another -L name, another TMUX_TMPDIR):
    # read, never acted on. A process under any of them is in a live pane, never an orphan.
    other_servers: tuple[TmuxServer, ...] = ()
    tmux_pids: frozenset[int] = frozenset()  # the tmux server processes that may shelter panes (see sheltering())
    in_tmux: dict[int, int] = field(default_factory=dict)  # pid -> the tmux server process it descends from
    # what earlier runs saw as this workspace's agents': processes in their panes, sessions (healthchecks.sightings)
    sightings: sightings.Memory = field(default_factory=sightings.Memory)
    boot_time: float = 0.0  # when the machine booted (epoch seconds): start ticks to moments
    dir_ids: dict[str, tuple[int, int]] = field(default_factory=dict)  # workspace, client dirs -> (st_dev, st_ino)
    pane_cwds: dict[int, str] = field(default_factory=dict)  # pid -> cwd, of the agent sessions' live pane processes
    # pid -> (start ticks, what proves it): processes a manager's own files prove its own (sources.managed: Claude
    # Code's background service), read once, in every source's run; the attribution asks it first
    managed: dict[int, tuple[int, str]] = field(default_factory=dict)

    @cached_property
    def by_pid(self) -> dict[int, Proc]:
        """Built in C (map, zip): judging asks it first, of thousands of processes."""
        return dict(zip(map(_PID, self.processes), self.processes, strict=True))

    def ancestors(self, proc: Proc, depth: int) -> list[Proc]:
        """Its parent, grandparent, ... as scanned, nearest first: at most ``depth`` (a pid table read at one moment
        is no tree for sure), ending where a parent was not scanned."""
        line: list[Proc] = []
        pid = proc.ppid
        while pid > 0 and len(line) < depth and (up := self.by_pid.get(pid)) is not None:
            line.append(up)
            pid = up.ppid if up.ppid != pid else 0
        return line

    def running(self, pid: int, ticks: int | None) -> Proc | None:
        """The process of this identity (pid + start ticks, as a manager's file or a plan recorded it), when it runs
        now: a pid alone may be anyone's by now, and a defunct one only waits for its parent."""
        proc = self.by_pid.get(pid)
        return proc if proc is not None and not proc.defunct and proc.start_ticks == ticks else None

    @property
    def tmux_ok(self) -> bool:
        return all(s.reachable for s in self.servers)

    @property
    def tmux_errors(self) -> tuple[str, ...]:
        return tuple(f"tmux server {s.label}: {s.reason}" for s in self.servers if not s.reachable)


@dataclass
class MachineScan:
    """The live reads of one run over several sources (--source all), made once whatever their number: one /proc
    scan, one `list-panes -a` per tmux server. Each source's snapshot takes its view of them (collect's ``scan``);
    its records, their stability loop and the evidence of its own processes stay its own."""

    procs: tuple[Proc, ...]
    servers: tuple[TmuxServer, ...]  # the servers asked for (--tmux-socket, else the default one)
    named: frozenset[int]  # the processes that run tmux (named_tmux)
    others: tuple[TmuxServer, ...]  # every other server of this user found running, read once
    tmux_version: str = ""
    extra: dict[str, TmuxServer] = field(default_factory=dict)  # servers only a record names, read once for all

    def server(self, name: str, timeout: float) -> TmuxServer:
        """A server a record names, read the first time a source asks for it."""
        if name not in self.extra:
            self.extra[name] = tmux.read_server(name, timeout)
        return self.extra[name]


def machine_scan(settings: Settings) -> MachineScan:
    """The live state every source of the run is judged against: this user's processes, then tmux (a process inside
    a pane has a pane at least as old as itself)."""
    procs = processes.scan(settings.is_claude, uid=os.geteuid(), programs=settings.programs)
    named = named_tmux(procs, tmux.binary_id())
    servers = identified(read_servers(settings), named)
    others = read_other_servers(procs, named, servers, settings.tmux_timeout)
    return MachineScan(procs, servers, named, others, tmux.version())


def pane_of(children: dict[int, list[int]], servers: tuple[TmuxServer, ...]) -> dict[int, tuple[str, str]]:
    """pid -> (server, window id) for every process that descends from a live pane (dead panes have none).

    A pane is listed once for every session that shows its window (a session group, link-window):
    it is walked once, and which sessions show its window is the analysis's business.
    """
    found: dict[int, tuple[str, str]] = {}
    for server in servers:
        seen = set()
        for pane in server.panes:
            if not pane.dead and pane.pane_id not in seen:
                seen.add(pane.pane_id)
                found.update(dict.fromkeys(processes.descendants(children, pane.pid), (server.label, pane.window_id)))
    return found


def under_tmux(children: dict[int, list[int]], tmux_pids: frozenset[int]) -> dict[int, int]:
    """pid -> the tmux server process it descends from, for every process below any tmux server."""
    return {pid: server for server in tmux_pids for pid in processes.descendants(children, server)[1:]}


def needs_proof(procs: tuple[processes.Proc, ...], inside: dict[int, int], servers: tuple[TmuxServer, ...],
                windows: dict[int, tuple[str, str]]) -> set[int]:
    """Agent programs' processes and their leftovers below no tmux server (``inside`` holds those below one), or
    below a checked one (``servers``) in none of its live panes (``windows``: pane_of; a killed pane's survivor
    stays the server's child), and their process groups."""
    checked = {s.server_pid for s in servers if s.server_pid}
    in_panes = windows if checked else {}
    loose = {p.pid for p in procs if (p.agent or left_by(p.exe)) and p.pid not in in_panes
             and (p.pid not in inside or inside[p.pid] in checked)}
    groups = {p.pgid for p in procs if p.pid in loose}
    return loose | {p.pid for p in procs if p.pgid in groups}


def read_servers(settings: Settings, records: Records | None = None, scan: MachineScan | None = None
                 ) -> tuple[TmuxServer, ...]:
    """The servers asked for (default: the default server), and every server a record names as its own. With a
    machine ``scan``, a server it read already is never read again (one `list-panes -a` per server a run)."""
    sockets: tuple[str | None, ...] = settings.tmux_sockets or (None,)
    servers = scan.servers if scan is not None else tuple(tmux.read_server(s, settings.tmux_timeout) for s in sockets)
    if records is not None:
        named = sorted({e.server for f in records.scopes for _, e in extensions(f.agents, ServerRecord) if e.server}
                       - set(sockets))
        # A server already read, by the socket tmux itself reported, is not read again: the record's name for it
        # becomes one of its names (dedupe). Others: one tmux call each, bounded whatever a store holds.
        known = (*servers, *scan.others) if scan is not None else servers
        read = {os.path.realpath(s.socket_path): s for s in known if s.server_pid}
        own = {s.label: s for s in records.servers}  # read by its reader with the records: the same moment's state
        fetch = scan.server if scan is not None else tmux.read_server
        servers += tuple(replace(read[real], label=name, aliases=()) if (real := os.path.realpath(name)) in read
                         else own.get(name) or fetch(name, settings.tmux_timeout)
                         for name in named[:MAX_RECORD_SERVERS])
    return tmux.dedupe(servers)


def private(others: tuple[TmuxServer, ...], records: Records) -> tuple[tuple[TmuxServer, ...], tuple[TmuxServer, ...]]:
    """(servers to check, servers left unchecked): the manager's private servers (a dead lead's swarm server no
    team names any more) that answered are checked; every other server of this user stays seen, never acted on."""
    pattern = records.dialect.private_server
    if pattern is None:
        return (), others
    here = os.path.realpath(os.path.dirname(tmux.default_socket_path(None)))  # where this run's tmux puts sockets
    mine = tuple(s for s in others if s.reachable and pattern.fullmatch(os.path.basename(s.socket_path))
                 and os.path.realpath(os.path.dirname(s.socket_path)) == here)
    return mine, tuple(s for s in others if s not in mine)


# Other servers that did not answer, by (pid, start ticks): asked once a run, not again by every snapshot of a fix.
_SILENT: dict[tuple[int, int], TmuxServer] = {}


def named_tmux(procs: tuple[processes.Proc, ...], tmux_id: tuple[int, int] | None) -> frozenset[int]:
    """The processes named like a tmux server that run a tmux binary: the very file this run invokes (``tmux_id``),
    or a file named tmux (another install, or this one replaced by an upgrade). Any program can give itself that
    name (PR_SET_NAME); one whose binary cannot be read (another user's) is kept: the safe side."""
    found = set()
    for p in procs:
        if p.name == TMUX_SERVER_NAME:
            exe = processes.binary(p.pid)
            if exe is None or exe[1] == tmux_id or TMUX_FILE_NAME.fullmatch(os.path.basename(exe[0])):
                found.add(p.pid)
    return frozenset(found)


def identified(servers: tuple[TmuxServer, ...], named: frozenset[int]) -> tuple[TmuxServer, ...]:
    """The servers, a running one that listed no pane (no session left: `exit-empty off`, or on its way out) given
    its pid, without which a killed pane's survivor, still its child, is below no checked server: the one process of
    this user running tmux (``named``) that listens on its socket, found with no tmux call. Two listening at one
    path (its socket file replaced) prove neither: left without."""
    if all(s.server_pid or s.state is not State.RUNNING for s in servers):
        return servers  # the common case: every pid came with the panes
    listening: dict[str, list[int]] = {}
    for pid, path in tmux.listening_sockets({pid for pid in named if _owned_by_me(pid)}).items():
        listening.setdefault(os.path.realpath(path), []).append(pid)
    return tuple(replace(s, server_pid=pids[0]) if s.state is State.RUNNING and not s.server_pid
                 and len(pids := listening.get(os.path.realpath(s.socket_path), [])) == 1 else s for s in servers)


def read_other_servers(
    procs: tuple[processes.Proc, ...], named: frozenset[int], checked: tuple[TmuxServer, ...], timeout: float
) -> tuple[TmuxServer, ...]:
    """This user's other tmux servers (``named``), read by the socket each listens on: all at once, within one
    ``timeout`` for the lot. Each result carries the process's pid; one with no listening socket is left out (it
    is no tmux server)."""
    known = {s.server_pid for s in checked}
    mine = {(p.pid, p.start_ticks) for p in procs if p.pid in named and p.pid not in known and _owned_by_me(p.pid)}
    sockets = tmux.listening_sockets({pid for pid, _ in mine})
    ask = [(key, sockets[key[0]]) for key in sorted(mine) if key[0] in sockets and key not in _SILENT]
    deadline = time.monotonic() + timeout

    def read(path: str) -> TmuxServer:
        left = deadline - time.monotonic()
        late = TmuxServer(path, State.UNREACHABLE, "", path, why=Unreachable.SILENT)
        server = tmux.read_server(path, left) if left > 0 else late
        return replace(server, reason=f"tmux did not answer within {timeout:g}s") if server.silent else server

    found: dict[tuple[int, int], TmuxServer] = {}
    if ask:
        workers = min(OTHER_SERVERS_AT_ONCE, len(ask))
        with ThreadPoolExecutor(workers, initializer=threads.leave_signals_to_main) as pool:
            for (key, _), server in zip(ask, pool.map(read, [path for _, path in ask]), strict=True):
                found[key] = replace(server, server_pid=server.server_pid or key[0])
    _SILENT.update((key, server) for key, server in found.items() if server.silent)
    found.update((key, _SILENT[key]) for key in mine if key in _SILENT)
    return tuple(found[key] for key in sorted(found))


def sheltering(named: frozenset[int], servers: tuple[TmuxServer, ...],
               others: tuple[TmuxServer, ...]) -> frozenset[int]:
    """The tmux server processes below which a process may be in a live pane: the checked servers, and of the
    processes that run tmux (``named``), the other servers that answered as tmux (or did not answer in time: a
    busy tmux) and other users' (which cannot be asked)."""
    impostors = {s.server_pid for s in others if not s.may_be_tmux}
    unread = {pid for pid in named if not _owned_by_me(pid)}
    checked = {s.server_pid for s in servers if s.server_pid}
    real = {s.server_pid for s in others if s.server_pid and s.may_be_tmux}
    return frozenset(checked | (named & real) | unread) - impostors


def _owned_by_me(pid: int) -> bool:
    return processes.owner(pid) == os.geteuid()


def fleet_uid(workspace: Path) -> int:
    """Whose agents these are: the workspace's owner (this user when there is no workspace to ask)."""
    try:
        return os.stat(workspace).st_uid
    except OSError:
        return os.geteuid()


@contextlib.contextmanager
def cycles_uncollected() -> Iterator[None]:
    """Python's cycle collector paused for the block (as it was after). A snapshot and its judging make a few
    hundred thousand objects that hold no cycles (parsed records, processes, panes); while they are made, the
    collector would traverse them, and everything older, dozens of times: a third of the snapshot's time at
    1,000 sessions (bench/RESULTS.md). A fix holds several such observations and makes its plan, edits and
    outcomes beside them: a quarter of the 50,000-ghost round. Their memory is freed by reference counting all
    the same."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


Live = tuple[tuple[Proc, ...], tuple[TmuxServer, ...], tuple[TmuxServer, ...], frozenset[int], dict[int, int],
             dict[int, list[int]]]


def live_state(settings: Settings, regs: Records, tmux_id: tuple[int, int] | None, scan: MachineScan | None) -> Live:
    """(processes, checked servers, other servers, sheltering tmux pids, pid -> its tmux server, pid -> its
    children) for these records: read now, or taken from the run's machine ``scan``."""
    if scan is None:
        procs = processes.scan(settings.is_claude, uid=fleet_uid(settings.workspace), programs=settings.programs)
        named = named_tmux(procs, tmux_id)
        servers = identified(read_servers(settings, regs), named)
        everyone = read_other_servers(procs, named, servers, settings.tmux_timeout)
    else:
        procs, named, servers = scan.procs, scan.named, identified(read_servers(settings, regs, scan), scan.named)
        checked = {s.server_pid for s in servers if s.server_pid}
        everyone = tuple(s for s in scan.others if s.server_pid not in checked)
    found, others = private(everyone, regs)
    servers = (*servers, *found)
    tmux_pids = sheltering(named, servers, others)
    children = processes.children_of(procs)
    return procs, servers, others, tmux_pids, under_tmux(children, tmux_pids), children


@cycles_uncollected()
def collect(settings: Settings, max_attempts: int = MAX_ATTEMPTS, scan: MachineScan | None = None) -> Snapshot:
    """One source's snapshot; with ``scan``, against the live state the run read once for all its sources."""
    started = time.monotonic()
    self_pids = processes.lineage(os.getpid())
    tmux_id = tmux.binary_id()  # the tmux this run invokes: a process named like its server must run it
    # Held still while read: the global registry, and the files a writer changed (or left half-written) while
    # the last attempt read. An empty or cut file can read the same twice: it is read again, held.
    with contextlib.closing(holding.reads(settings.workspace, settings.source, settings.lock_timeout,
                                          max_attempts, settings.place_options)) as attempts:
        for attempt in attempts:  # the body runs while the files are held
            regs = attempt.records
            procs, servers, others, tmux_pids, inside, children = live_state(settings, regs, tmux_id, scan)
            windows = pane_of(children, servers)
            # TMUX: the session it was started in
            wanted = frozenset(n for n in (regs.dialect.id_env, regs.dialect.root_env, "TMUX") if n is not None)
            procs = processes.with_details(procs, needs_proof(procs, inside, servers, windows), wanted)
            after = sources.fingerprint(settings.workspace, regs)
            attempt.changed = {Path(path) for path in _changed(regs.fingerprint, after)}
    seen = sightings.read(settings.sightings, os.path.realpath(settings.workspace))
    prefix = settings.session_prefix or regs.dialect.session_prefix  # the agent sessions' panes, whose cwd is read
    return Snapshot(
        settings=settings,
        taken_at=time.time(),
        duration=time.monotonic() - started,
        attempts=attempt.number,
        stable=not attempt.changed,
        registries=regs,
        servers=servers,
        processes=procs,
        self_pids=self_pids,
        children=children,  # with_details changed no pid or parent: the tree and the panes' processes stand
        windows=windows,
        tmux_version=scan.tmux_version if scan is not None else tmux.version(),
        other_servers=others,
        tmux_pids=tmux_pids,
        in_tmux=inside,
        sightings=seen,
        boot_time=psutil.boot_time(),
        dir_ids=dir_ids(settings.workspace, regs),
        pane_cwds=processes.cwds(
            p.pid for s in servers for p in s.panes if not p.dead and prefix and p.session.startswith(prefix)
        ),
        managed=sources.managed(dict(settings.place_options)),
    )


def _changed(read: tuple[tuple[str, str | None], ...], after: tuple[tuple[str, str | None], ...]) -> set[str]:
    """The registry files whose bytes changed (or that appeared or went) between the read and the fingerprint
    after it. A file the reader refused unread (a symlink, a FIFO: no digest) is not compared by its bytes."""
    before, now = dict(read), dict(after)
    return {
        path
        for path in before.keys() | now.keys()
        if path not in before or path not in now or (before[path] is not None and before[path] != now[path])
    }


def dir_ids(workspace: Path, regs: Records) -> dict[str, tuple[int, int]]:
    """The workspace and the client directories its tasks name, as the kernel identifies them (real paths). Most
    tasks name the same few directories: each is resolved once (a realpath each of 1,000 task files' cost 50 ms)."""
    real = os.path.realpath(workspace)
    named = {c for f in regs.scopes for c in f.client_dirs}
    paths = {real, os.path.dirname(real)} | {os.path.realpath(c) for c in named}
    found = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            continue
        found[path] = (st.st_dev, st.st_ino)
    return found
