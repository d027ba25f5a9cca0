"""Collect one read-only snapshot of registries, tmux servers and processes.

Reading the registry, tmux and processes is not atomic: an agent deployed in between would look
like a ghost. So the registry files are fingerprinted again after the live reads and the whole
snapshot is taken again (a bounded number of times) when they changed. Processes are scanned
before tmux is read: a process inside a pane has a pane at least as old as itself, so every
scanned process that runs in a session finds that session in the later tmux read. The evidence of
ownership (cwd, TMUX environment) is read last, and only for Claude processes outside every pane
and their process groups: the only processes judged by it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property

from . import processes, sources, tmux
from .records import Records
from .settings import Settings
from .tmux import TmuxServer

MAX_ATTEMPTS = 3
TMUX_SERVER_NAME = "tmux: server"  # how every tmux server names itself (its kernel process name)


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    taken_at: float
    duration: float
    attempts: int
    stable: bool  # False: the registry kept changing while we read; judged on the last read
    registries: Records
    servers: tuple[TmuxServer, ...]  # the checked servers, each once
    processes: tuple[processes.Proc, ...]
    self_pids: frozenset[int]  # the collecting process and its ancestors
    tmux_version: str = ""
    # Every other tmux server of this user found running (another -L name, another TMUX_TMPDIR):
    # read, never acted on. A process under any of them is in a live pane, never an orphan.
    other_servers: tuple[TmuxServer, ...] = ()
    tmux_pids: frozenset[int] = frozenset()  # every `tmux: server` process seen, whoever runs it
    in_tmux: dict[int, int] = field(default_factory=dict)  # pid -> the tmux server process it descends from

    @cached_property
    def by_pid(self) -> dict[int, processes.Proc]:
        return {p.pid: p for p in self.processes}

    @property
    def tmux_ok(self) -> bool:
        return all(s.reachable for s in self.servers)

    @property
    def tmux_errors(self) -> tuple[str, ...]:
        return tuple(f"tmux server {s.label}: {s.reason}" for s in self.servers if not s.reachable)


def pane_of(children: dict[int, list[int]], servers: tuple[TmuxServer, ...]) -> dict[int, tuple[str, str]]:
    """pid -> (server, session) for every process that descends from a live pane (dead panes have none)."""
    return {
        pid: (server.label, pane.session)
        for server in servers
        for pane in server.panes
        if not pane.dead
        for pid in processes.descendants(children, pane.pid)
    }


def under_tmux(children: dict[int, list[int]], tmux_pids: frozenset[int]) -> dict[int, int]:
    """pid -> the tmux server process it descends from, for every process below any tmux server."""
    return {pid: server for server in tmux_pids for pid in processes.descendants(children, server)[1:]}


def needs_proof(procs: tuple[processes.Proc, ...], inside: dict[int, int]) -> set[int]:
    """Claude processes below no tmux server (``inside`` holds those below one), and their process groups."""
    loose = {p.pid for p in procs if p.is_claude and p.pid not in inside}
    groups = {p.pgid for p in procs if p.pid in loose}
    return loose | {p.pid for p in procs if p.pgid in groups}


def read_servers(settings: Settings, derived: tuple[str, ...] = ()) -> tuple[TmuxServer, ...]:
    """The --tmux-socket servers (default: the default server) and those the records say they live on."""
    sockets = (*(settings.tmux_sockets or (None,)), *derived)
    return tmux.dedupe(tuple(tmux.read_server(s, settings.tmux_timeout) for s in sockets))


def private(others: tuple[TmuxServer, ...], records: Records) -> tuple[tuple[TmuxServer, ...], tuple[TmuxServer, ...]]:
    """(servers to check, servers left unchecked): the manager's private servers (a dead lead's swarm server no
    team names any more) are checked; every other server of this user stays seen, never acted on."""
    pattern = records.dialect.private_server
    if pattern is None:
        return (), others
    here = os.path.realpath(os.path.dirname(tmux.default_socket_path(None)))  # where this run's tmux puts sockets
    mine = tuple(s for s in others if pattern.fullmatch(os.path.basename(s.socket_path))
                 and os.path.realpath(os.path.dirname(s.socket_path)) == here)
    return mine, tuple(s for s in others if s not in mine)


def read_other_servers(
    procs: tuple[processes.Proc, ...], checked: tuple[TmuxServer, ...], timeout: float
) -> tuple[TmuxServer, ...]:
    """This user's tmux servers that were not asked for, found in the process table and read by socket path."""
    known = {s.server_pid for s in checked}
    mine = set()
    for p in procs:
        if p.name == TMUX_SERVER_NAME and p.pid not in known and _owned_by_me(p.pid):
            mine.add(p.pid)
    sockets = tmux.listening_sockets(mine)
    return tuple(tmux.read_server(path, timeout) for _, path in sorted(sockets.items()))


def _owned_by_me(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}").st_uid == os.geteuid()
    except OSError:
        return False


def collect(settings: Settings, max_attempts: int = MAX_ATTEMPTS) -> Snapshot:
    started = time.monotonic()
    self_pids = processes.lineage(os.getpid())
    attempts = 0
    while True:
        attempts += 1
        regs = sources.load(settings.root, settings.source, settings.lock_timeout)
        procs = processes.scan(settings.is_claude)
        servers = read_servers(settings, regs.servers)
        found, others = private(read_other_servers(procs, servers, settings.tmux_timeout), regs)
        servers = (*servers, *found)
        tmux_pids = frozenset(p.pid for p in procs if p.name == TMUX_SERVER_NAME)
        inside = under_tmux(processes.children_of(procs), tmux_pids)
        procs = processes.with_details(procs, needs_proof(procs, inside))
        stable = sources.fingerprint(regs) == regs.fingerprint
        if stable or attempts >= max_attempts:
            break
    return Snapshot(
        settings=settings,
        taken_at=time.time(),
        duration=time.monotonic() - started,
        attempts=attempts,
        stable=stable,
        registries=regs,
        servers=servers,
        processes=procs,
        self_pids=self_pids,
        tmux_version=tmux.version(),
        other_servers=others,
        tmux_pids=tmux_pids,
        in_tmux=inside,
    )
